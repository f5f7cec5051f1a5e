#!/bin/sh
# A real etcd 3.5 member restored from a backend db, with WAL entries above the db's consistent
# index, and etcd's own HashKV of it:
#
#   tools/etcd-bin/restored-member.sh BIN_DIR DB OUT CLIENT_PORT PEER_PORT PUTS STOP
#
# BIN_DIR holds etcd, etcdctl and etcdutl (3.5.x: target/etcd/3.5.30/usr/bin, from
# `tools/etcd-bin/fetch.sh 3.5.30 sid`). DB is read only: `etcdutl snapshot restore DB
# --skip-hash-check` copies it into OUT/data (member/snap/db with a new consistent index and
# term, a WAL of one ConfChangeAddNode at term 1, a .snap at index 1), then etcd boots on
# 127.0.0.1:CLIENT_PORT/PEER_PORT, PUTS puts and one delete go through etcdctl, and
# `etcdctl endpoint hashkv` and `endpoint status` (JSON) are written to OUT/etcd-hashkv.json and
# OUT/etcd-status.json while it runs. STOP `term`: then SIGTERM and a wait (etcd commits its
# backend on a clean stop: the db's consistent index is the last entry). STOP `kill`: etcd runs
# with a backend batch interval of an hour and is SIGKILLed, so its db keeps the consistent index
# of its last commit and the WAL holds the entries above it (etcd's boot re-applies them). OUT
# must not exist. etcd's log: OUT/etcd.log.
set -eu

bin=${1:?usage: restored-member.sh BIN_DIR DB OUT CLIENT_PORT PEER_PORT PUTS STOP}
db=${2:?DB}
out=${3:?OUT}
client=${4:?CLIENT_PORT}
peer=${5:?PEER_PORT}
puts=${6:?PUTS}
stop=${7:?STOP: term or kill}
case $stop in
term) batch= ;;
kill) batch="--backend-batch-interval=1h --backend-batch-limit=100000000" ;;
*)
    echo "restored-member.sh: STOP is term or kill, not $stop" >&2
    exit 1
    ;;
esac

if [ -e "$out" ]; then
    echo "restored-member.sh: $out exists" >&2
    exit 1
fi
mkdir -p "$out"
peer_url=http://127.0.0.1:$peer
client_url=http://127.0.0.1:$client
# The variables etcd and etcdctl read from the environment would change what runs.
for v in $(env | sed -n 's/^\(ETCD[A-Z0-9_]*\)=.*/\1/p'); do unset "$v"; done

"$bin/etcdutl" snapshot restore "$db" --skip-hash-check --data-dir "$out/data" --name r1 \
    --initial-cluster "r1=$peer_url" --initial-advertise-peer-urls "$peer_url" \
    >"$out/restore.log" 2>&1

"$bin/etcd" --name r1 --data-dir "$out/data" --listen-client-urls "$client_url" \
    --advertise-client-urls "$client_url" --listen-peer-urls "$peer_url" \
    --initial-advertise-peer-urls "$peer_url" --initial-cluster "r1=$peer_url" $batch \
    >"$out/etcd.log" 2>&1 &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT

ctl() {
    "$bin/etcdctl" --endpoints "$client_url" --command-timeout 30s "$@"
}
tries=0
until ctl endpoint health >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 300 ] || ! kill -0 $pid 2>/dev/null; then
        echo "restored-member.sh: etcd did not serve (see $out/etcd.log)" >&2
        exit 1
    fi
    sleep 0.2
done
i=0
while [ $i -lt "$puts" ]; do
    ctl put "/restored/after/$((i % 50))" "value-$i" >/dev/null
    i=$((i + 1))
done
ctl del /restored/after/7 >/dev/null
ctl endpoint hashkv -w json >"$out/etcd-hashkv.json"
ctl endpoint status -w json >"$out/etcd-status.json"
if [ "$stop" = kill ]; then
    kill -KILL $pid
else
    kill -TERM $pid
fi
wait $pid 2>/dev/null || true
trap - EXIT
