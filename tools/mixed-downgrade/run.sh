#!/bin/bash
# A mixed etcd cluster on loopback: x1 and x2 run etcd 3.4.23 (`etcd` on PATH), x3 runs
# 3.5.30 (fetched by tools/etcd-bin/fetch.sh), so the cluster version stays 3.4. A downgrade
# enable to 3.3 through x3's gRPC gateway passes 3.5's validation (3.3 is one minor below the
# cluster version) and proposes a DowngradeInfoSet, which 3.4.23 cannot apply.
#
#   tools/mixed-downgrade/run.sh OUT_DIR [BASE_PORT]
#
# Leaves OUT_DIR/x1..x3 (data dirs), OUT_DIR/x?.log (each etcd's log) and OUT_DIR/result.txt
# (one line per member: "<name> alive|exited"). Every etcd it started is stopped on exit.
set -euo pipefail
out=${1:?usage: run.sh OUT_DIR [BASE_PORT]}
base=${2:-28790}
repo=$(cd "$(dirname "$0")/../.." && pwd)
b35=$repo/target/etcd/3.5.30/usr/bin
[ -x "$b35/etcd" ] || "$repo/tools/etcd-bin/fetch.sh" 3.5.30 sid >&2
# (read whole first: `grep -q` closing the pipe early would fail the pipeline under pipefail)
v34=$(etcd --version 2>/dev/null || true)
case $v34 in *"etcd Version: 3.4.23"*) ;; *) echo "run.sh: etcd 3.4.23 must be on PATH (make deps)" >&2; exit 2;; esac
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
client() { echo "http://127.0.0.1:$((base + $1))"; }
peer() { echo "http://127.0.0.1:$((base + 10 + $1))"; }
cluster="x1=$(peer 1),x2=$(peer 2),x3=$(peer 3)"
start() { # name binary n
  "$2" --name "$1" --data-dir "$out/$1" --listen-client-urls "$(client "$3")" \
    --advertise-client-urls "$(client "$3")" --listen-peer-urls "$(peer "$3")" \
    --initial-advertise-peer-urls "$(peer "$3")" --initial-cluster "$cluster" \
    --initial-cluster-token mixed-downgrade >"$out/$1.log" 2>&1 &
  pids+=($!)
}
start x1 etcd 1
start x2 etcd 2
start x3 "$b35/etcd" 3
for _ in $(seq 1 60); do
  curl -sf "$(client 3)/version" | grep -q '"etcdcluster":"3.4.0"' && break
  sleep 0.5
done
curl -sf "$(client 3)/version" >&2
ETCDCTL_API=3 etcdctl --endpoints "$(client 1)" put a 1 >&2
# x3 (3.5.30) leads: a leader saves the commit of an entry (HardState) before it applies it,
# so x3's WAL holds the DowngradeInfoSet as committed whatever happens to the 3.4 members.
# (A follower learns the commit only from the leader, which may panic first.)
status_json() { ETCDCTL_API=3 etcdctl --endpoints "$(client 1),$(client 2),$(client 3)" endpoint status -w json; }
for _ in $(seq 1 20); do
  ids=$(status_json | python3 -c 'import json,sys
s = json.load(sys.stdin)
x3 = [e for e in s if e["Endpoint"].endswith(":'"$((base + 3))"'")][0]["Status"]["header"]["member_id"]
lead = [e["Endpoint"] for e in s if e["Status"]["leader"] == e["Status"]["header"]["member_id"]]
print("%x %s" % (x3, lead[0] if lead else ""))') || true
  x3id=${ids%% *}; leader=${ids#* }
  [ "$leader" = "$(client 3)" ] && break
  [ -n "$leader" ] && ETCDCTL_API=3 etcdctl --endpoints "$leader" move-leader "$x3id" >&2 || true
  sleep 0.5
done
[ "$leader" = "$(client 3)" ] || { echo "run.sh: x3 did not become the leader" >&2; exit 1; }
curl -s -m 10 -X POST "$(client 3)/v3/maintenance/downgrade" \
  -d '{"action":"ENABLE","version":"3.3"}' >&2 || true
echo >&2
sleep 3
: >"$out/result.txt"
for i in 1 2 3; do
  if kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then state=alive; else state=exited; fi
  echo "x$i $state" >>"$out/result.txt"
done
