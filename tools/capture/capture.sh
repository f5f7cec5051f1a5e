#!/usr/bin/env bash
# tools/capture/capture.sh — capture real etcd 3.4 and 3.5 data dirs for the raft-replay corpus.
#
# Usage:  tools/capture/capture.sh [all|a|b|c|d|e|f]  (default: all; `make corpus` runs `all`)
#
# Environment (all optional):
#   OUT_DIR      where corpus/<capture>/ is written        (default: <repo>/corpus)
#   WORK_DIR     scratch dir for live data dirs and logs    (default: mktemp -d /tmp/raft-replay-capture.XXXXXX)
#   MAX_SECONDS  hard wall-clock limit for the whole run    (default: 1800)
#   KEEP_WORK=1  keep WORK_DIR afterwards (default: kept only on failure)
#
# What it does (details in corpus/README.md and each capture's README.md/manifest.json):
#   cluster-a: 3-member cluster m1..m3; learner m4 added + promoted early (its WAL starts at
#              index 1); KV workload covering puts (leases, prev-kv, ignore-value/ignore-lease),
#              deletes (single, range, prefix, from-key), txns (value/version/create/mod/lease
#              compares, success and failure branches), lease grant/revoke/keep-alive-once/expiry,
#              failing requests, compaction; move-leader; remove m3; kill -9 + restart m2;
#              >5000 bulk puts so the leader's raft log is compacted; learner m5 that catches
#              up from a leader snapshot (asserted: its WAL has a snapshot record > 1 and its
#              first entry index > 1); promote m5.
#   cluster-b: 3-member cluster b1..b3; CAS counter txns, delete/recreate generations;
#              ~70 puts of 1 MiB (single repeated byte, compresses ~1000:1) so every member
#              cuts a 64,000,000-byte WAL segment; kill -9 + restart b3 in the middle; prefix
#              delete + compaction.
#   cluster-c: 3-member cluster c1..c3 (--snapshot-count 100); >5000 bulk puts so the leader's
#              raft log is compacted; learner c4 catches up from a leader snapshot (asserted as
#              for m5), then, still a learner, applies enough further writes (bulk puts, txns,
#              deletes, a leased key) to take >= 2 local snapshots; asserted: at least one of
#              its local WAL snapshot records at S comes after an entry record with index > S
#              (etcd's raft loop persists entries before the apply loop writes the snapshot
#              record); lease revoke; compaction; promote c4; final writes.
#   cluster-d: etcd 3.5.30 (tools/etcd-bin/fetch.sh 3.5.30 sid, called here), --snapshot-count
#              50; members d1..d3, learner d4 added + promoted early (asserted: WAL from index 1);
#              cluster-a's KV workload; etcdctl endpoint health (Alarm GET through raft);
#              compaction; downgrade validate/enable/cancel to 3.4 (gRPC gateway; each verified
#              by reading back); remove d3; 72 puts of 1 MiB values on 8 keys (compacted every 12)
#              so d1, d2, d4 cut a segment (asserted), kill -9 of d2 after put 34, restart after
#              put 54; final txn, lease, compaction.
#   cluster-e: rolling upgrade: e1..e3 start on etcd 3.4.23 (--snapshot-count 25); workload;
#              each member in turn is stopped (SIGTERM), written around, restarted on 3.5.30
#              from its data dir; wait (deadline) for cluster version 3.5.0 on every member;
#              workload on 3.5 (lease, txns, compaction, endpoint health), downgrade round.
#   cluster-f: etcd 3.5.30 (tools/etcd-bin/fetch.sh 3.5.30 sid), --snapshot-count 100
#              --max-wals 2 --max-snapshots 2: f1 restored (etcdutl snapshot restore) from an
#              `etcdctl snapshot save` of a single-member source cluster that is not archived;
#              learners f2, f3 join through a leader snapshot (asserted) and are promoted; 150
#              puts of 1 MiB so every member purges its first WAL segment (asserted); f3 SIGKILLed
#              in a burst of puts from 16 clients (its db >= 10 entries behind its WAL, asserted
#              where raft-replay is built); etcd --force-new-cluster on a copy of f3's data dir
#              records etcd's own HashKV of that state (checkpoint f3-killed-restarted-on-copy).
#   At quiescent checkpoints the script records, per live member, `endpoint status`,
#   `endpoint hashkv` (rev 0) and `member list` as printed by etcdctl -w json, and
#   GET /version (server and cluster version). Every start and stop of an etcd process goes to
#   runs.tsv (the manifest's members[].runs: which binary wrote which WAL index range).
#   All members are finally stopped with SIGTERM, data dirs are tarred (data.tar.gz) and
#   a manifest.json + README.md are written next to them.
#
# Safety: everything listens on 127.0.0.1 only; every etcd this script starts is tracked by
# PID and killed on exit (trap); no other process is touched. Every etcdctl/curl call has a
# timeout and every wait loop a deadline.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
HELPER="$SCRIPT_DIR/capture_helper.py"
OUT_DIR="${OUT_DIR:-$REPO_ROOT/corpus}"
MAX_SECONDS="${MAX_SECONDS:-1800}"
WHAT="${1:-all}"
T0=$(date +%s)

# etcd reads any ETCD_* environment variable as a flag; make sure none leak in.
for v in $(compgen -e | grep '^ETCD_' || true); do unset "$v"; done
export ETCDCTL_API=3

log() { printf '[capture %4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }

# ------------------------------------------------------------------------------ binaries
# etcd 3.4.23 is Debian 12's (on PATH); etcd 3.5.30 comes from Debian sid through
# tools/etcd-bin/fetch.sh (a private apt state; .debs unpacked under target/etcd/3.5.30).
V34=3.4.23
V35=3.5.30
declare -A ETCD_BIN=() ETCDCTL_BIN=()
ETCDCTL=etcdctl     # the etcdctl the current capture uses (ctl)
declare -A BIN=()   # member name -> etcd version it runs on (start_member picks ETCD_BIN[$v])

ensure_etcd35() {
    timeout 900 sh "$REPO_ROOT/tools/etcd-bin/fetch.sh" "$V35" sid || die "tools/etcd-bin/fetch.sh $V35 sid failed"
    local d="$REPO_ROOT/target/etcd/$V35/usr/bin" v
    for v in etcd etcdctl; do [ -x "$d/$v" ] || die "$d/$v missing after fetch.sh"; done
    ETCD_BIN[$V35]="$d/etcd"; ETCDCTL_BIN[$V35]="$d/etcdctl"
    v=$("$d/etcd" --version | awk '/^etcd Version:/ {print $3}')
    [ "$v" = "$V35" ] || die "$d/etcd is $v, not $V35"
}

# ------------------------------------------------------------------------------ dependencies
# Install what is missing with apt (Debian packages etcd 3.4.23 as etcd-server/etcd-client).
ensure_deps() {
    local pkgs=()
    command -v etcd     >/dev/null 2>&1 || pkgs+=(etcd-server)
    command -v etcdctl  >/dev/null 2>&1 || pkgs+=(etcd-client)
    command -v curl     >/dev/null 2>&1 || pkgs+=(curl)
    command -v python3  >/dev/null 2>&1 || pkgs+=(python3)
    command -v gzip     >/dev/null 2>&1 || pkgs+=(gzip)
    command -v tar      >/dev/null 2>&1 || pkgs+=(tar)
    command -v base64   >/dev/null 2>&1 || pkgs+=(coreutils)
    if ((${#pkgs[@]})); then
        log "installing missing packages: ${pkgs[*]}"
        local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${pkgs[@]}"
    fi
    # Debian's etcd-server may start a system etcd on 2379/2380; we never use those ports.
    ETCD_VERSION="$(etcd --version | awk '/^etcd Version:/ {print $3}')"
    case "$ETCD_VERSION" in
        3.4.*) ;;
        *) log "WARNING: etcd $ETCD_VERSION is not 3.4.x; the corpus is meant to be 3.4 (3.4.23)";;
    esac
    ETCD_BIN[$V34]=etcd; ETCDCTL_BIN[$V34]=etcdctl
}

# ------------------------------------------------------------------------------ process tracking
declare -A PIDS=()      # member name -> pid of the etcd we started
WATCHDOG_PID=""
FAILED=1

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local n
    for n in "${!PIDS[@]}"; do
        local p="${PIDS[$n]}"
        if kill -0 "$p" 2>/dev/null; then
            log "cleanup: SIGTERM $n (pid $p)"
            kill -TERM "$p" 2>/dev/null || true
        fi
    done
    for n in "${!PIDS[@]}"; do
        local p="${PIDS[$n]}" i
        for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$p" 2>/dev/null; then
            log "cleanup: SIGKILL $n (pid $p)"
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
    if [ -n "$WATCHDOG_PID" ]; then kill "$WATCHDOG_PID" 2>/dev/null || true; wait "$WATCHDOG_PID" 2>/dev/null || true; fi
    if [ "$FAILED" = 1 ] || [ "${KEEP_WORK:-0}" = 1 ]; then
        log "work dir (data dirs, etcd logs) kept at $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

die() {
    log "ERROR: $*"
    local f
    for f in "$LOGDIR"/*.log; do
        [ -e "$f" ] || continue
        echo "---- tail $f" >&2; tail -n 5 "$f" >&2 || true
    done
    exit 1
}

# ------------------------------------------------------------------------------ per-capture state
CAP=""          # capture scratch dir ($WORK/<name>)
CAPNAME=""
TOKEN=""
SNAPCOUNT=""
declare -A CPORT=() PPORT=() ROLE=() NOTES=()
LIVE=()         # names of running members, in start order
LEARNERS=()     # subset of LIVE that are (still) learners
CPN=0           # checkpoint counter
LAST_EVENT=""

event() {   # append to the capture's event log (goes into manifest.json)
    LAST_EVENT="$*"
    printf '%s\t%s\n' "$(( $(date +%s) - T0 ))" "$*" >>"$CAP/events.tsv"
    log "event: $*"
}

curl_url() { echo "http://127.0.0.1:${CPORT[$1]}"; }
peer_url() { echo "http://127.0.0.1:${PPORT[$1]}"; }
urls() { local o=() n; for n in "$@"; do o+=("$(curl_url "$n")"); done; local IFS=,; echo "${o[*]}"; }
is_learner() { local x; for x in "${LEARNERS[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
voters() { local n; for n in "${LIVE[@]}"; do is_learner "$n" || echo "$n"; done; }
remove_from() { # remove_from ARRAYNAME name
    local -n arr=$1; local out=() x
    for x in "${arr[@]}"; do [ "$x" = "$2" ] || out+=("$x"); done
    arr=("${out[@]}")
}

# etcdctl with bounded time; all output of workload commands goes to the client log.
ctl() { timeout 60 "$ETCDCTL" --dial-timeout=5s --command-timeout=30s "$@"; }
# etcdctl against all live voters (learners reject KV requests in 3.4)
kv() {
    local v; v=$(voters | tr '\n' ' ')
    # shellcheck disable=SC2086
    ctl --endpoints="$(urls $v)" "$@" >>"$LOGDIR/$CAPNAME-client.log" 2>&1 || { echo "kv $* failed" >&2; return 1; }
}
# a request that etcd must reject (it still becomes a WAL entry when the check is at apply time)
kv_fail() {
    if kv "$@" 2>/dev/null; then die "expected failure but succeeded: etcdctl $*"; fi
    return 0
}
# etcdctl txn reading compares/success/failure from stdin (non-interactive format)
kv_txn() {
    local v; v=$(voters | tr '\n' ' ')
    # shellcheck disable=SC2086
    ctl --endpoints="$(urls $v)" txn >>"$LOGDIR/$CAPNAME-client.log" 2>&1 || die "txn failed"
}
# POST a JSON body to the gRPC gateway of the first live voter (used where etcdctl cannot help)
gw() { # gw PATH JSON
    local n; n=$(voters | head -n1)
    local out
    out=$(timeout 30 curl -sS -m 20 -X POST "$(curl_url "$n")$1" -d "$2") || die "gateway $1 failed"
    echo "$out" >>"$LOGDIR/$CAPNAME-client.log"
    case "$out" in *'"error"'*|*'"code"'*) die "gateway $1 returned error: $out";; esac
    echo "$out"
}
b64() { printf '%s' "$1" | base64 -w0; }

status_json() { ctl -w json --endpoints="$(curl_url "$1")" endpoint status; }
status_of() { # status_of NAME -> "id_dec id_hex applied committed term revision leader_dec"
    local f="$CAP/tmp.status.$1.json"
    status_json "$1" >"$f" 2>/dev/null || return 1
    python3 "$HELPER" status "$f"
}
id_hex_of() { status_of "$1" | awk '{print $2}'; }
current_rev() { status_of "$(voters | head -n1)" | awk '{print $6}'; }
applied_of() { status_of "$1" | awk '{print $3}'; }
leader_name() { # name of the current leader among live members
    local n s lid="" 
    for n in "${LIVE[@]}"; do s=$(status_of "$n") || continue; lid=$(awk '{print $7}' <<<"$s"); break; done
    [ -n "$lid" ] || return 1
    for n in "${LIVE[@]}"; do s=$(status_of "$n") || continue; [ "$(awk '{print $1}' <<<"$s")" = "$lid" ] && { echo "$n"; return 0; }; done
    return 1
}

port_free() { ! ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }

# ------------------------------------------------------------------------------ member lifecycle
start_member() { # start_member NAME new|existing INITIAL_CLUSTER
    local n=$1 state=$2 ic=$3
    port_free "${CPORT[$n]}" && port_free "${PPORT[$n]}" || die "port ${CPORT[$n]} or ${PPORT[$n]} in use"
    local v=${BIN[$n]:-$V34}
    [ -n "${ETCD_BIN[$v]:-}" ] || die "no etcd binary for version $v"
    run_log "$n" start "$v"
    "${ETCD_BIN[$v]}" --name "$n" --data-dir "$CAP/data/$n" \
        --listen-client-urls "$(curl_url "$n")" --advertise-client-urls "$(curl_url "$n")" \
        --listen-peer-urls "$(peer_url "$n")" --initial-advertise-peer-urls "$(peer_url "$n")" \
        --initial-cluster "$ic" --initial-cluster-state "$state" --initial-cluster-token "$TOKEN" \
        --snapshot-count "$SNAPCOUNT" --logger zap --log-outputs stderr \
        >>"$LOGDIR/$CAPNAME-$n.log" 2>&1 &
    PIDS[$n]=$!
    LIVE+=("$n")
    event "start $n on etcd $v (--initial-cluster-state $state, pid ${PIDS[$n]})"
}

# Which binary wrote which part of each member's WAL: runs.tsv gets one row per start and per
# stop (kill -9, SIGTERM or self-exit) with the member's Status.raftIndex (commit index) when it
# answers and the last entry index in its WAL on disk (after the process has exited, for stops).
run_log() { # run_log NAME start|stop VERSION|- [STATUS_RAFT_INDEX]
    local n=$1 what=$2 v=$3 ri=${4:--} last
    last=$(python3 "$HELPER" walsummary "$CAP/data/$n" 2>/dev/null | python3 -c 'import json,sys; x=json.load(sys.stdin)["last_entry_index"]; print("-" if x is None else x)' 2>/dev/null || echo -)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$what" "$v" "$ri" "$last" "$(( $(date +%s) - T0 ))" >>"$CAP/runs.tsv"
}
raft_index_of() { status_of "$1" 2>/dev/null | awk '{print $4}' || true; }

wait_up() { # wait until NAME answers endpoint status
    local n=$1 deadline=$(( $(date +%s) + ${2:-60} ))
    until status_of "$n" >/dev/null 2>&1; do
        kill -0 "${PIDS[$n]}" 2>/dev/null || die "$n exited during startup"
        (( $(date +%s) < deadline )) || die "$n did not come up"
        sleep 0.3
    done
    printf '%s\tup\t%s\t%s\t-\t%s\n' "$n" "${BIN[$n]:-$V34}" "$(raft_index_of "$n")" "$(( $(date +%s) - T0 ))" >>"$CAP/runs.tsv"
}

wait_all_up() { local n; for n in "$@"; do wait_up "$n" 90; done; }

wait_caught_up() { # wait until NAME's applied index >= the leader's
    local n=$1 deadline=$(( $(date +%s) + ${2:-180} )) l la na
    while :; do
        l=$(leader_name || true)
        if [ -n "$l" ]; then
            la=$(applied_of "$l" || echo 0); na=$(applied_of "$n" || echo -1)
            [ "$na" -ge "$la" ] && [ "$la" -gt 0 ] && return 0
        fi
        (( $(date +%s) < deadline )) || die "$n did not catch up (leader=$l applied=$la, $n applied=$na)"
        sleep 0.5
    done
}

stop_member() { # SIGTERM and wait (a stopping leader transfers leadership first)
    local n=$1 p="${PIDS[$1]}" i ri
    ri=$(raft_index_of "$n")
    if kill -0 "$p" 2>/dev/null; then
        kill -TERM "$p"
        for ((i = 0; i < 300; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && die "$n did not stop within 30s after SIGTERM"
    fi
    wait "$p" 2>/dev/null || true
    unset "PIDS[$n]"
    remove_from LIVE "$n"; remove_from LEARNERS "$n"
    run_log "$n" stop "${BIN[$n]:-$V34}" "$ri"
    event "stopped $n (SIGTERM; Status.raftIndex before: ${ri:--})"
}

kill9_member() {
    local n=$1 p="${PIDS[$1]}" ri
    ri=$(raft_index_of "$n")
    kill -KILL "$p"; wait "$p" 2>/dev/null || true
    unset "PIDS[$n]"
    remove_from LIVE "$n"
    run_log "$n" stop "${BIN[$n]:-$V34}" "$ri"
    event "kill -9 $n (pid $p; Status.raftIndex just before: ${ri:--})"
}

# Membership changes are refused with "unhealthy cluster" until the member handling them has
# been connected to its peers for 5s (strict reconfig check); retry only that error.
ctl_member() { # ctl_member ARGS... (stdout = etcdctl stdout)
    local deadline=$(( $(date +%s) + 90 )) err="$CAP/tmp.member.err"
    while :; do
        if ctl "$@" 2>"$err"; then cat "$err" >>"$LOGDIR/$CAPNAME-client.log"; return 0; fi
        cat "$err" >>"$LOGDIR/$CAPNAME-client.log"
        grep -q 'unhealthy cluster' "$err" || { cat "$err" >&2; return 1; }
        (( $(date +%s) < deadline )) || return 1
        sleep 1
    done
}

member_list_json() { local v; v=$(voters | tr '\n' ' '); ctl -w json --endpoints="$(urls $v)" member list; }

add_learner() { # add_learner NAME -> member add --learner, then start it with state=existing
    local n=$1 f="$CAP/tmp.add.$1.json" ml="$CAP/tmp.ml.json" id ic
    local v; v=$(voters | tr '\n' ' ')
    ctl_member -w json --endpoints="$(urls $v)" member add "$n" --learner --peer-urls="$(peer_url "$n")" >"$f" || die "member add $n failed"
    id=$(python3 "$HELPER" add-id "$f")
    event "member add --learner $n (id $id)"
    member_list_json >"$ml" || die "member list failed"
    ic=$(python3 "$HELPER" initial-cluster "$ml" "$n" "$(peer_url "$n")")
    LEARNERS+=("$n")
    start_member "$n" existing "$ic"
    wait_up "$n" 120
}

promote() { # member promote, retried until the leader considers the learner in sync
    local n=$1 id deadline=$(( $(date +%s) + 120 ))
    id=$(id_hex_of "$n")
    remove_from LEARNERS "$n"   # promote is sent to the other voters
    local others=() x; for x in "${LIVE[@]}"; do [ "$x" = "$n" ] || is_learner "$x" || others+=("$x"); done
    until ctl --endpoints="$(urls "${others[@]}")" member promote "$id" >>"$LOGDIR/$CAPNAME-client.log" 2>&1; do
        (( $(date +%s) < deadline )) || die "promote $n failed"
        sleep 1
    done
    event "member promote $n (id $id)"
}

remove_member() { # remove_member NAME VIA... (member remove sent to VIA; etcd exits by itself)
    local n=$1 id p ri i; shift
    id=$(id_hex_of "$n"); p=${PIDS[$n]}
    ctl_member --endpoints="$(urls "$@")" member remove "$id" >>"$LOGDIR/$CAPNAME-client.log" || die "member remove $n"
    event "member remove $n (id $id)"
    remove_from LIVE "$n"
    for i in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$p" 2>/dev/null; then
        LIVE+=("$n"); stop_member "$n"; event "$n did not exit by itself; stopped with SIGTERM"
    else
        wait "$p" 2>/dev/null || true; unset "PIDS[$n]"
        run_log "$n" stop "${BIN[$n]:-$V34}"
        event "$n exited by itself after its removal"
    fi
}

# ------------------------------------------------------------------------------ checkpoints
wait_quiescent() { # all live members: applied == committed, same everywhere, stable for 2 polls
    local deadline=$(( $(date +%s) + ${1:-120} )) prev="" sig n s a c ok
    while :; do
        sig=""; ok=1
        for n in "${LIVE[@]}"; do
            s=$(status_of "$n") || { ok=0; break; }
            a=$(awk '{print $3}' <<<"$s"); c=$(awk '{print $4}' <<<"$s")
            [ "$a" = "$c" ] || ok=0
            sig+="$a "
        done
        if [ "$ok" = 1 ] && [ "$(tr ' ' '\n' <<<"$sig" | sed '/^$/d' | sort -u | wc -l)" = 1 ] && [ "$sig" = "$prev" ]; then
            return 0
        fi
        prev="$sig"
        (( $(date +%s) < deadline )) || die "cluster not quiescent within timeout (applied: $sig)"
        sleep 0.5
    done
}

checkpoint() { # checkpoint LABEL  (status, hashkv, status on every live member; retried)
    local label=$1 attempt dir n rc
    for ((attempt = 1; attempt <= 10; attempt++)); do
        wait_quiescent 120
        dir="$CAP/checkpoints/$(printf '%02d' "$CPN")-$label"
        rm -rf "$dir"; mkdir -p "$dir"
        for n in "${LIVE[@]}"; do status_json "$n" >"$dir/$n.status1.json" || continue 2; done
        for n in "${LIVE[@]}"; do
            is_learner "$n" && continue   # 3.4 learners answer only Status and serializable Range
            ctl -w json --endpoints="$(curl_url "$n")" endpoint hashkv >"$dir/$n.hashkv.json" || continue 2
        done
        for n in "${LIVE[@]}"; do status_json "$n" >"$dir/$n.status2.json" || continue 2; done
        for n in "${LIVE[@]}"; do   # {"etcdserver": server version, "etcdcluster": cluster version}
            timeout 20 curl -sS -m 10 "$(curl_url "$n")/version" >"$dir/$n.version.json" || continue 2
        done
        member_list_json >"$dir/memberlist.json" || continue
        python3 - "$dir" "$label" "$LAST_EVENT" "${LIVE[*]}" "${LEARNERS[*]:-}" <<'EOF'
import json, sys
d, label, ev, live, learners = sys.argv[1:6]
json.dump({"label": label, "after_event": ev, "live": live.split(), "learners": learners.split()},
          open(d + "/meta.json", "w"))
EOF
        rc=0; python3 "$HELPER" cp-check "$dir" >&2 || rc=$?
        if [ "$rc" = 0 ]; then
            CPN=$((CPN + 1))
            log "checkpoint $label recorded"
            return 0
        fi
        log "checkpoint $label attempt $attempt not quiescent/consistent (rc=$rc); retrying"
        sleep $(( rc == 3 ? 3 : 1 ))
    done
    die "checkpoint $label never became quiescent"
}

# ------------------------------------------------------------------------------ bulk writes
# Many small puts quickly: curl config files through the gRPC gateway (one keep-alive
# connection per curl process, a few processes in parallel, each to a different voter).
bulk_puts() { # bulk_puts COUNT KEYPREFIX KEYSPACE [MEMBER...]   (default: all live voters)
    local count=$1 prefix=$2 space=$3 procs=${BULK_PROCS:-4}; shift 3
    local vs=("$@"); ((${#vs[@]})) || mapfile -t vs < <(voters)
    local targets=() n; for n in "${vs[@]}"; do targets+=("$(curl_url "$n")"); done
    # key = <prefix><i % space, 5 digits>, value = "v<i>"; request i goes to process i % procs
    python3 - "$CAP/tmp.bulk" "$count" "$prefix" "$space" "$procs" "${targets[@]}" <<'PYEOF'
import base64, sys
base, count, prefix, space, procs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
targets = sys.argv[6:]
b64 = lambda s: base64.b64encode(s.encode()).decode()
for p in range(procs):
    with open("%s.%d.cfg" % (base, p), "w") as f:
        url = targets[p % len(targets)] + "/v3/kv/put"
        blocks = []
        for i in range(p, count, procs):
            body = '{\\"key\\":\\"%s\\",\\"value\\":\\"%s\\"}' % (b64("%s%05d" % (prefix, i % space)), b64("v%d" % i))
            blocks.append('url = "%s"\ndata = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' % (url, body))
        f.write("next\n".join(blocks))  # no trailing "next": curl would complain about a missing URL
PYEOF
    local p
    local pids=()
    for ((p = 0; p < procs && p < count; p++)); do
        timeout 600 curl -sS -K "$CAP/tmp.bulk.$p.cfg" >"$CAP/tmp.bulk.$p.codes" 2>>"$LOGDIR/$CAPNAME-client.log" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "bulk curl failed"; done
    local ok; ok=$(cat "$CAP"/tmp.bulk.*.codes | grep -c '^200$' || true)
    [ "$ok" = "$count" ] || die "bulk puts: only $ok of $count returned 200"
    rm -f "$CAP"/tmp.bulk.*
}

# ------------------------------------------------------------------------------ capture driver
begin_capture() { # begin_capture NAME TOKEN SNAPCOUNT WORKLOAD-DESCRIPTION [VERSIONS]
    CAPNAME=$1; TOKEN=$2; SNAPCOUNT=$3
    CAP="$WORK/$CAPNAME"; rm -rf "$CAP"; mkdir -p "$CAP/data" "$CAP/checkpoints"
    : >"$CAP/events.tsv"; : >"$CAP/members.tsv"; : >"$CAP/runs.tsv"
    LIVE=(); LEARNERS=(); CPN=0; CPORT=(); PPORT=(); ROLE=(); NOTES=(); BIN=()
    local vers=${5:-$ETCD_VERSION}   # every etcd version the capture runs, oldest first
    ETCDCTL=${ETCDCTL_BIN[${vers%% *}]:-etcdctl}
    python3 - "$CAP/info.json" "$CAPNAME" "$vers" "$4" "$SNAPCOUNT" "$TOKEN" <<'EOF'
import json, sys, datetime
p, name, vers, wl, sc, tok = sys.argv[1:7]
vers = vers.split()
json.dump({"name": name, "etcd_version": vers[-1], "etcd_versions": vers, "workload": wl,
           "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "etcd_flags": {"snapshot_count": int(sc), "initial_cluster_token": tok,
                          "logger": "zap", "log_outputs": "stderr",
                          "other": "defaults (heartbeat 100ms, election 1000ms, max-wals 5, max-snapshots 5, no auto-compaction)"}},
          open(p, "w"), indent=1)
EOF
    log "=== capture $CAPNAME in $CAP"
}

define_member() { # define_member NAME CLIENTPORT PEERPORT ROLE NOTES [ETCD-VERSION]
    CPORT[$1]=$2; PPORT[$1]=$3; ROLE[$1]=$4; NOTES[$1]=$5; BIN[$1]=${6:-$V34}
}

finish_capture() { # stop everything, archive, manifest
    local n
    while ((${#LIVE[@]})); do stop_member "${LIVE[-1]}"; done
    for n in $(printf '%s\n' "${!CPORT[@]}" | sort); do
        [ -d "$CAP/data/$n" ] || continue
        printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$(curl_url "$n")" "$(peer_url "$n")" "${ROLE[$n]}" "${NOTES[$n]}" >>"$CAP/members.tsv"
    done
    local out="$OUT_DIR/$CAPNAME" tmp="$OUT_DIR/.$CAPNAME.tmp"
    rm -rf "$tmp"; mkdir -p "$tmp"
    # ustar keeps names and modes exactly; owner normalised to 0; no sparse encoding (the
    # preallocated tail segments are stored as real zeros, which gzip squeezes to ~60 KB).
    local members; members=$(cd "$CAP/data" && ls | sort)
    # shellcheck disable=SC2086
    tar -C "$CAP/data" --format=ustar --sort=name --owner=0 --group=0 --numeric-owner -cf - $members \
        | gzip -9n >"$tmp/data.tar.gz"
    python3 "$HELPER" manifest "$CAP" "$tmp"
    rm -rf "$out"; mv "$tmp" "$out"
    log "=== $CAPNAME written to $out ($(du -sh "$out" | cut -f1))"
    ls -l "$out" >&2
}

# The KV workload of cluster-a (also cluster-d): puts (leases, prev-kv, ignore-value/ignore-lease,
# empty value), txns with value/version/create/mod compares and lease compares (both branches),
# deletes (single, range, prefix, from-key, no-op), lease grant/keep-alive/revoke/expiry, failing
# requests. Lease grants and reads go to member $1.
kv_workload_a() { # kv_workload_a MEMBER
    local i
    for i in $(seq 1 9); do kv put "k$i" "v$i"; done
    for i in $(seq 1 20); do kv put "a/$i" "first-$i"; done
    for i in $(seq 1 5); do kv put "a/$i" "second-$i"; done
    kv put k1 "v1-b" --prev-kv
    kv put empty ""
    kv put k2 --ignore-value                 # keeps value "v2", bumps version/mod revision
    kv_fail put never-existed --ignore-value # ErrKeyNotFound at apply: WAL entry, no revision
    local L1 L2 L3 L4
    L1=$(ctl --endpoints="$(urls "$1")" lease grant 3600 | awk '{print $2}')
    L2=$(ctl --endpoints="$(urls "$1")" lease grant 3600 | awk '{print $2}')
    L4=$(ctl --endpoints="$(urls "$1")" lease grant 3600 | awk '{print $2}')   # never gets keys
    event "lease grant L1=$L1 L2=$L2 L4=$L4 (ttl 3600)"
    kv put l/1 lv1 --lease="$L1"
    kv put l/2 lv2 --lease="$L1"
    kv put l/3 lv3 --lease="$L2"
    kv put l/4 lv4 --lease="$L2"
    kv put l/3 lv3-b --ignore-lease          # keeps L2 attached
    kv put l/2 lv2-detached                  # put without lease detaches l/2 from L1
    kv lease keep-alive --once "$L1"
    kv_fail put l/bad x --lease=1234abcd     # lease not found at apply: WAL entry, no revision
    # txns through etcdctl (compares: value, version, create, mod; both branches)
    printf 'value("k1") = "v1-b"\nversion("k1") = "2"\ncreate("k3") > "0"\nmod("k3") < "1000"\n\nput t/1 success-1\nget k1\ndel k9\n\nput t/1 failure-1\n\n' | kv_txn
    printf 'value("k4") = "nope"\n\nput t/2 success-2\n\nput t/2 failure-2\ndel k8\nget k4\n\n' | kv_txn
    printf 'version("missing") = "0"\ncreate("missing") = "0"\n\nput t/3 missing-key-compares-true\n\n\n' | kv_txn
    printf 'value("missing") != "x"\n\nput t/4 never\n\nput t/4 value-compare-on-missing-key-is-false\n\n' | kv_txn
    printf 'mod("a/1") > "1"\nversion("a/1") != "1"\n\nput a/1 third-1\nput a/2 third-2\ndel a/3\n\nput t/5 no\n\n' | kv_txn
    printf 'create("a/4") = "1"\n\nput t/6 no\n\ndel a/4 a/6\nput t/6 failure-branch-range-delete\n\n' | kv_txn
    printf '\nput t/7 no-compares\nput t/8 no-compares\n\n\n' | kv_txn
    printf 'value("k5") = "v5"\n\nget k5\n\nget k6\n\n' | kv_txn   # read-only txn: served locally, no WAL entry
    # lease compares: etcdctl 3.4 panics on lease("k") compares (clientv3.mustInt64 gets a
    # string), so these go through the gRPC gateway as raw TxnRequests.
    local L1d=$((16#$L1)) out
    out=$(gw /v3/kv/txn "{\"compare\":[{\"target\":\"LEASE\",\"key\":\"$(b64 l/1)\",\"result\":\"EQUAL\",\"lease\":\"$L1d\"}],\"success\":[{\"requestPut\":{\"key\":\"$(b64 t/lease)\",\"value\":\"$(b64 lease-equal-success)\"}}],\"failure\":[{\"requestPut\":{\"key\":\"$(b64 t/lease)\",\"value\":\"$(b64 lease-equal-failure)\"}}]}")
    case "$out" in *'"succeeded":true'*) ;; *) die "lease compare txn 1 should succeed: $out";; esac
    out=$(gw /v3/kv/txn "{\"compare\":[{\"target\":\"LEASE\",\"key\":\"$(b64 l/2)\",\"result\":\"EQUAL\",\"lease\":\"$L1d\"}],\"success\":[{\"requestPut\":{\"key\":\"$(b64 t/lease2)\",\"value\":\"$(b64 no)\"}}],\"failure\":[{\"requestDeleteRange\":{\"key\":\"$(b64 k7)\"}},{\"requestPut\":{\"key\":\"$(b64 t/lease2)\",\"value\":\"$(b64 lease-mismatch-failure)\"}}]}")
    case "$out" in *'"succeeded":true'*) die "lease compare txn 2 should fail: $out";; esac
    out=$(gw /v3/kv/txn "{\"compare\":[{\"target\":\"LEASE\",\"key\":\"$(b64 l/1)\",\"result\":\"GREATER\",\"lease\":\"0\"},{\"target\":\"VERSION\",\"key\":\"$(b64 l/1)\",\"result\":\"EQUAL\",\"version\":\"1\"}],\"success\":[{\"requestPut\":{\"key\":\"$(b64 t/lease3)\",\"value\":\"$(b64 lease-greater-success)\",\"lease\":\"$L1d\"}}],\"failure\":[]}")
    case "$out" in *'"succeeded":true'*) ;; *) die "lease compare txn 3 should succeed: $out";; esac
    event "txns done (etcdctl + gateway lease compares)"
    # deletes
    kv del k1                                 # single key
    kv del k2 k5                              # range [k2, k5)
    kv del --prefix a/1                       # a/1, a/10..a/19
    kv del does-not-exist                     # no-op: WAL entry, no revision
    kv put z/1 z1; kv put z/2 z2; kv put zz zz
    kv del --from-key z/2                     # z/2, zz (and anything after)
    kv put k1 "k1-second-generation"          # recreate a deleted key (new generation)
    # leases: revoke with keys, revoke without keys, failing revoke, expiry by the leader
    kv lease revoke "$L2"                     # deletes l/3, l/4 in one revision
    kv lease revoke "$L4"                     # no keys: no revision
    kv_fail lease revoke 7777777              # lease not found at apply
    L3=$(ctl --endpoints="$(urls "$1")" lease grant 3 | awk '{print $2}')
    event "lease grant L3=$L3 (ttl 3, expires on its own)"
    kv put e/1 x --lease="$L3"; kv put e/2 y --lease="$L3"; kv put e/0 w --lease="$L3"
    local deadline=$(( $(date +%s) + 60 ))
    while [ -n "$(ctl --endpoints="$(urls "$1")" get e/ --prefix --keys-only)" ]; do
        (( $(date +%s) < deadline )) || die "lease L3 never expired"; sleep 0.5
    done
    event "lease L3 expired (leader proposed LeaseRevoke)"
}
# ============================================================================== capture A
capture_a() {
    begin_capture cluster-a raft-replay-cluster-a 200 \
        "3 members m1-m3; learner m4 added+promoted before the first snapshot; KV workload (puts incl. leases, prev-kv, ignore-value, ignore-lease, empty value; deletes single/range/prefix/from-key/no-op; etcdctl txns with value/version/create/mod compares and a gateway txn with lease compares, success and failure branches; lease grant/keep-alive-once/revoke/expiry; failing put (missing lease), failing revoke, failing ignore-value); compaction; move-leader; remove m3; kill -9 + restart m2; >5000 bulk puts via gRPC gateway; learner m5 catches up from a leader snapshot, then promoted; second compaction; clean SIGTERM stop"
    local i
    define_member m1 23791 23891 "original voter" "member from bootstrap (WAL starts at index 1 with the bootstrap ConfChanges)"
    define_member m2 23792 23892 "original voter; kill -9 + restart" "killed with SIGKILL mid-workload while bulk puts were in flight, restarted from its data dir, caught up from the leader"
    define_member m3 23793 23893 "original voter; removed" "removed from the cluster (member remove) after m4 was promoted; etcd exits by itself (see events); its log stops early and ends with its own RemoveNode entry, which its last persisted HardState need not mark committed"
    define_member m4 23794 23894 "learner -> voter (entries)" "added with member add --learner before the leader took any raft snapshot, so it replicated from index 1 (no leader snapshot; asserted by the script); promoted"
    define_member m5 23795 23895 "learner from leader snapshot -> voter" "added after >5000+snapshot-count entries; caught up from a leader snapshot: its WAL holds snapshot{0,0}, then a snapshot record at S, then entries from S+1 (asserted by the script). S is the leader's applied index when it sent the snapshot (etcd builds the MsgSnap from its current state, not from its last local .snap), here the AddLearnerNode entry itself; promoted afterwards"
    local IC="m1=$(peer_url m1),m2=$(peer_url m2),m3=$(peer_url m3)"

    # -- bootstrap + early learner m4 ---------------------------------------------------------
    start_member m1 new "$IC"; start_member m2 new "$IC"; start_member m3 new "$IC"
    wait_all_up m1 m2 m3
    add_learner m4
    wait_caught_up m4
    promote m4
    wait_caught_up m4
    python3 "$HELPER" walsummary "$CAP/data/m4" | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["first_entry_index"] == 1, s["first_entry_index"]' \
        || die "m4 should have replicated from index 1"
    checkpoint bootstrap-and-m4-promoted

    # -- KV workload ---------------------------------------------------------------------------
    kv_workload_a m1
    checkpoint after-kv-workload

    # -- compaction ----------------------------------------------------------------------------
    local R; R=$(current_rev)
    kv compaction --physical $((R - 6))
    event "compaction --physical $((R - 6)) (current revision $R)"
    kv put after-compaction 1; kv put k3 "k3-after-compaction"; kv del k6
    sleep 2   # let every member finish its (asynchronous) physical compaction
    checkpoint after-compaction

    # -- move leader, then remove an original member -------------------------------------------
    local ldr target; ldr=$(leader_name) || die "no leader"
    if [ "$ldr" = m4 ]; then target=m1; else target=m4; fi
    kv move-leader "$(id_hex_of "$target")"
    event "move-leader $ldr -> $target"
    NOTES[$target]+="; move-leader target (leadership moved from $ldr)"
    ldr=$(leader_name); [ "$ldr" = "$target" ] || die "leader is $ldr, expected $target after move-leader"
    kv put after-move-leader 1
    remove_member m3 m1 m2 m4
    kv put after-remove-m3 1
    checkpoint after-move-leader-and-remove-m3

    # -- kill -9 of m2 while writes are in flight, restart from its data dir -------------------
    bulk_puts 300 pre-kill/ 50 m1 m4 &     # not to m2, which is about to die
    local bp=$!
    sleep 0.3
    kill9_member m2
    wait "$bp" || die "bulk puts during kill failed"
    for i in $(seq 1 20); do kv put "while-m2-down/$i" "$i"; done
    printf 'version("while-m2-down/1") = "1"\n\nput while-m2-down/1 txn\n\n\n' | kv_txn
    start_member m2 existing "m1=$(peer_url m1),m2=$(peer_url m2),m4=$(peer_url m4)"
    wait_up m2 90
    wait_caught_up m2
    checkpoint after-kill9-restart-m2

    # -- bulk: push the raft log far enough that the leader compacts its in-memory log ---------
    # etcd 3.4 keeps SnapshotCatchUpEntries=5000 entries behind each snapshot; write until the
    # applied index is > 5000 + 2*snapshot-count.
    local ap need
    ap=$(applied_of m1); need=$(( 5000 + 2 * SNAPCOUNT + 100 - ap ))
    if [ "$need" -gt 0 ]; then bulk_puts "$need" bulk/ 500; fi
    event "bulk puts: $need (applied index was $ap)"
    R=$(current_rev)
    kv compaction --physical $((R - 300))
    event "compaction --physical $((R - 300)) (current revision $R)"
    sleep 2
    checkpoint after-bulk-and-second-compaction

    # -- learner m5 catches up from a leader snapshot ------------------------------------------
    add_learner m5
    wait_caught_up m5 180
    sleep 1
    checkpoint m5-learner-caught-up
    python3 "$HELPER" walsummary "$CAP/data/m5" >"$CAP/tmp.m5.json"
    python3 - "$CAP/tmp.m5.json" <<'EOF' || die "m5 does not show the leader-snapshot shape"
import json, sys
s = json.load(open(sys.argv[1]))
snaps = [x["index"] for x in s["snapshot_records"] if x["index"] > 0]
assert snaps, "no non-zero snapshot record in m5's WAL"
assert s["first_entry_index"] is not None and s["first_entry_index"] > 1, s["first_entry_index"]
assert s["first_entry_index"] == snaps[0] + 1, (s["first_entry_index"], snaps)
print("m5: WAL snapshot record at index %d, first entry %d" % (snaps[0], s["first_entry_index"]), file=sys.stderr)
EOF
    event "verified: m5 WAL starts with a leader snapshot (first entry index > 1)"
    promote m5
    wait_caught_up m5
    kv put after-m5-promoted 1
    printf 'value("after-m5-promoted") = "1"\n\nput final/txn yes\ndel --prefix bulk/0001\n\nput final/txn no\n\n' | kv_txn
    local L5; L5=$(ctl --endpoints="$(urls m1)" lease grant 3600 | awk '{print $2}')
    kv put final/leased 1 --lease="$L5"; kv put final/leased2 2 --lease="$L5"
    kv lease revoke "$L5"
    event "final writes (lease L5=$L5 granted, 2 keys attached, revoked)"
    checkpoint final
    finish_capture
}

# ============================================================================== capture B
capture_b() {
    begin_capture cluster-b raft-replay-cluster-b 50 \
        "3 members b1-b3; CAS counter via txns (mod compare), delete/recreate generations, del --prefix; ~70 puts of 1 MiB values (one repeated byte each) so every member cuts a WAL segment; kill -9 + restart of b3 in the middle of the large puts; prefix delete of large keys; compaction; small txns; clean SIGTERM stop"
    define_member b1 24791 24891 "voter" "original member; WAL has a cut segment (0000000000000000-*.wal, truncated to its data length) and a preallocated 64,000,000-byte tail"
    define_member b2 24792 24892 "voter" "original member; same WAL shape as b1"
    define_member b3 24793 24893 "voter; kill -9 + restart" "killed with SIGKILL after ~half of the 1 MiB puts, restarted from its data dir and caught up from the leader's log"
    local IC="b1=$(peer_url b1),b2=$(peer_url b2),b3=$(peer_url b3)" i

    start_member b1 new "$IC"; start_member b2 new "$IC"; start_member b3 new "$IC"
    wait_all_up b1 b2 b3
    # -- small workload ------------------------------------------------------------------------
    kv put counter 0
    for i in $(seq 1 15); do   # compare-and-swap increments keyed on the mod revision
        local mr; mr=$(ctl --endpoints="$(urls b1)" get counter -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["kvs"][0]["mod_revision"])')
        printf 'mod("counter") = "%s"\n\nput counter %s\n\nget counter\n\n' "$mr" "$i" | kv_txn
    done
    printf 'mod("counter") = "1"\n\nput counter stale\n\nput cas/failures 1\n\n' | kv_txn   # stale CAS: failure branch
    for i in 1 2 3; do kv put gen/x "gen$i-a"; kv put gen/x "gen$i-b"; kv del gen/x; done   # 3 generations
    kv put gen/x "gen4-alive"
    for i in $(seq 1 12); do kv put "cfg/$i" "value-$i"; done
    kv del --prefix cfg/1          # cfg/1, cfg/10..12
    kv del cfg/2 cfg/5             # range
    checkpoint after-small-workload

    # -- large values: force a WAL segment cut (64,000,000 bytes) -------------------------------
    local chars=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ
    local nbig=72 size=1048576 c
    for i in $(seq 0 $((nbig - 1))); do
        c=${chars:$((i % ${#chars})):1}
        # value from stdin (1 MiB does not fit in one argv string); 48 distinct keys, so some
        # keys get a second version
        head -c "$size" /dev/zero | tr '\0' "$c" | kv put "blob/$(printf '%02d' $((i % 48)))"
        if [ "$i" = 34 ]; then
            kill9_member b3
        fi
        if [ "$i" = 54 ]; then
            start_member b3 existing "$IC"
            wait_up b3 90
        fi
    done
    event "$nbig puts of $size-byte values (keys blob/00..blob/47)"
    wait_caught_up b3 180
    checkpoint after-large-values
    local n f
    for n in b1 b2 b3; do
        f=$(ls "$CAP/data/$n/member/wal" | grep -c '\.wal$')
        [ "$f" -ge 2 ] || die "$n has only $f WAL file(s); expected a segment cut"
    done
    event "verified: every member cut its WAL (>= 2 .wal files)"

    # -- deletes, compaction, small txns ---------------------------------------------------------
    kv del --prefix blob/1         # blob/10..19
    kv del blob/20 blob/30         # range
    local R; R=$(current_rev)
    kv compaction --physical "$R"  # compact at the head revision
    event "compaction --physical $R (head revision)"
    printf 'version("blob/00") = "2"\nvalue("gen/x") = "gen4-alive"\n\nput post/1 yes\ndel gen/x\n\nput post/1 no\n\n' | kv_txn
    kv put post/2 done
    sleep 2
    checkpoint final
    finish_capture
}

# ============================================================================== capture C
# c4's WAL shape: snapshot{0,0}, leader snapshot record at S0, entries S0+1..., then local
# snapshot records S1 < S2 ..., at least one written after entries with index > Si.
c4_shape() { # c4_shape DATADIR -> exit 0 iff that shape is reached (description on stderr)
    python3 "$HELPER" walsummary "$1" >"$CAP/tmp.c4.json" 2>/dev/null || return 1
    python3 - "$CAP/tmp.c4.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
recs = [x for x in s["snapshot_records"] if x["index"] > 1]
if not recs or s["first_entry_index"] != recs[0]["index"] + 1:
    sys.exit("c4: no leader snapshot shape (records %s, first entry %s)" % ([x["index"] for x in recs], s["first_entry_index"]))
local = recs[1:]
late = [x for x in local if x["preceding_higher_entries"] > 0]
print("c4: leader snapshot record %d, first entry %d, local snapshot records %s; entry records above each record preceding it: %s" % (
    recs[0]["index"], s["first_entry_index"], [x["index"] for x in local],
    ", ".join("%d:%d" % (x["index"], x["preceding_higher_entries"]) for x in recs)), file=sys.stderr)
sys.exit(0 if len(local) >= 2 and late and not s["index_gaps"] else 1)
EOF
}

capture_c() {
    begin_capture cluster-c raft-replay-cluster-c 100 \
        "3 members c1-c3 (--snapshot-count 100); a few puts/txns/deletes; >5000 bulk puts via gRPC gateway so the leader's raft log is compacted; compaction; learner c4 catches up from a leader snapshot; while c4 is still a learner, more bulk puts plus txns, deletes and a leased key until c4 has taken >= 2 local snapshots, at least one of whose WAL snapshot records (index S) comes after entry records with index > S; lease revoke; second compaction; promote c4; final writes; clean SIGTERM stop"
    local i
    define_member c1 25791 25891 "original voter" "member from bootstrap (WAL starts at index 1 with the bootstrap ConfChanges); many local snapshots"
    define_member c2 25792 25892 "original voter" "member from bootstrap; same WAL shape as c1"
    define_member c3 25793 25893 "original voter" "member from bootstrap; same WAL shape as c1"
    define_member c4 25794 25894 "learner from leader snapshot, then local snapshots -> voter" "added after >5000+snapshot-count entries; caught up from a leader snapshot (WAL: snapshot{0,0}, snapshot record S0, entries from S0+1; asserted), then took >= 2 local snapshots while still a learner; at least one local WAL snapshot record at S comes after entry records with index > S, because etcd's raft loop persists entries before the apply loop writes the snapshot record (asserted; see wal_summary.snapshot_records[].preceding_higher_entries); promoted at the end"
    local IC="c1=$(peer_url c1),c2=$(peer_url c2),c3=$(peer_url c3)"

    # -- bootstrap + small workload ----------------------------------------------------------
    start_member c1 new "$IC"; start_member c2 new "$IC"; start_member c3 new "$IC"
    wait_all_up c1 c2 c3
    for i in $(seq 1 10); do kv put "c/$i" "v$i"; done
    printf 'value("c/1") = "v1"\n\nput c/txn success\ndel c/2\n\nput c/txn failure\n\n' | kv_txn
    kv del --prefix c/1                    # c/1, c/10
    checkpoint bootstrap

    # -- bulk: push the raft log far enough that the leader compacts its in-memory log ---------
    # (etcd 3.4 keeps SnapshotCatchUpEntries=5000 entries behind each snapshot)
    local ap need R
    ap=$(applied_of c1); need=$(( 5000 + 2 * SNAPCOUNT + 100 - ap ))
    if [ "$need" -gt 0 ]; then bulk_puts "$need" bulk/ 500; fi
    event "bulk puts: $need (applied index was $ap)"
    R=$(current_rev)
    kv compaction --physical $((R - 200))
    event "compaction --physical $((R - 200)) (current revision $R)"
    sleep 2

    # -- learner c4 catches up from a leader snapshot ------------------------------------------
    add_learner c4
    wait_caught_up c4 180
    sleep 1
    checkpoint c4-learner-caught-up
    python3 "$HELPER" walsummary "$CAP/data/c4" >"$CAP/tmp.c4.json"
    python3 - "$CAP/tmp.c4.json" <<'EOF' || die "c4 does not show the leader-snapshot shape"
import json, sys
s = json.load(open(sys.argv[1]))
snaps = [x["index"] for x in s["snapshot_records"] if x["index"] > 0]
assert snaps, "no non-zero snapshot record in c4's WAL"
assert s["first_entry_index"] is not None and s["first_entry_index"] > 1, s["first_entry_index"]
assert s["first_entry_index"] == snaps[0] + 1, (s["first_entry_index"], snaps)
print("c4: WAL snapshot record at index %d, first entry %d" % (snaps[0], s["first_entry_index"]), file=sys.stderr)
EOF
    event "verified: c4 WAL starts with a leader snapshot (first entry index > 1)"

    # -- c4 (still a learner) takes local snapshots ---------------------------------------------
    # Each round: concurrent bulk puts (entries reach c4 in batches, ahead of the commit index
    # it knows) plus a few etcdctl writes; stop once c4's WAL shows the wanted shape. Reading
    # the live WAL is only a progress probe; the shape is asserted again after the stop.
    local L1 round
    L1=$(ctl --endpoints="$(urls c1)" lease grant 3600 | awk '{print $2}')
    event "lease grant L1=$L1 (ttl 3600)"
    kv put lease/1 x --lease="$L1"; kv put lease/2 y --lease="$L1"
    for round in 1 2 3 4 5 6; do
        if [ "$round" = 1 ]; then bulk_puts $(( 2 * SNAPCOUNT + 60 )) more/ 200; else bulk_puts $(( SNAPCOUNT + 20 )) more/ 200; fi
        printf 'version("lease/1") = "%s"\n\nput lease/1 round-%s --lease=%s\nput c/round %s\n\nput c/round-failed %s\n\n' \
            "$round" "$round" "$L1" "$round" "$round" | kv_txn
        kv del "more/$(printf '%05d' "$round")"
        kv del --prefix "more/0010$round"
        event "c4 local-snapshot round $round"
        wait_caught_up c4 120
        sleep 1
        if c4_shape "$CAP/data/c4"; then break; fi
        [ "$round" -lt 6 ] || die "c4 did not take >= 2 local snapshots with a snapshot record after higher entries"
    done
    event "verified (live WAL): c4 took >= 2 local snapshots; a local snapshot record follows entries with a higher index"
    kv lease revoke "$L1"
    event "lease revoke L1=$L1 (deletes lease/1, lease/2)"
    R=$(current_rev)
    kv compaction --physical $((R - 50))
    event "compaction --physical $((R - 50)) (current revision $R)"
    sleep 2
    checkpoint c4-local-snapshots

    # -- promote c4, final writes ----------------------------------------------------------------
    promote c4
    wait_caught_up c4
    for i in $(seq 1 20); do kv put "final/$i" "$i"; done
    printf 'value("final/1") = "1"\n\nput final/txn yes\ndel final/2\n\nput final/txn no\n\n' | kv_txn
    event "final writes after promoting c4"
    checkpoint final

    # stop (in finish_capture's order), then assert the shape on the WAL c4 left behind
    while ((${#LIVE[@]})); do stop_member "${LIVE[-1]}"; done
    c4_shape "$CAP/data/c4" || die "c4's final WAL does not have the wanted shape"
    event "verified (after stop): c4 WAL = leader snapshot record + >= 2 local snapshot records, one after entries with a higher index"
    finish_capture
}

# ============================================================================== etcd 3.5 helpers
# Downgrade through the gRPC gateway: etcdctl 3.5 has no `downgrade` command (it came with
# etcdctl 3.6); the Maintenance.Downgrade RPC and its gateway route /v3/maintenance/downgrade
# are in 3.5 (api/etcdserverpb/gw/rpc.pb.gw.go). VALIDATE only reads (linearizable read, no
# entry); ENABLE and CANCEL propose an InternalRaftRequest{DowngradeInfoSet} each
# (server/etcdserver/v3_server.go downgradeEnable/downgradeCancel). etcd 3.5 applies that entry
# but never answers its proposer: applierV3backend.Apply returns a nil result for
# DowngradeInfoSet, and applyEntryNormal triggers the waiter only for a non-nil one
# (server/etcdserver/apply.go, server.go), so ENABLE and CANCEL end in "request timed out"
# (gRPC code 14) after the request timeout. Whether they took effect is read back: VALIDATE
# fails with "downgrade job in progress" while one is enabled, CANCEL with "no inflight
# downgrade job" while none is.
downgrade_call() { # downgrade_call ACTION [VERSION] -> gateway answer on stdout
    local n; n=$(voters | head -n1)
    local body="{\"action\":\"$1\"${2:+,\"version\":\"$2\"}}" out
    out=$(timeout 40 curl -sS -m 30 -X POST "$(curl_url "$n")/v3/maintenance/downgrade" -d "$body") || die "gateway downgrade $1 failed"
    echo "downgrade $1 ${2:-}: $out" >>"$LOGDIR/$CAPNAME-client.log"
    echo "$out"
}

# downgrade validate 3.4 / enable 3.4 / cancel, each checked, with writes between (cluster
# version 3.5 required)
downgrade_round() {
    local out
    out=$(downgrade_call VALIDATE 3.4)
    case "$out" in *'"version":"3.5.0"'*) ;; *) die "downgrade VALIDATE 3.4: $out";; esac
    event "downgrade VALIDATE 3.4: accepted (cluster version 3.5.0; no raft entry)"
    out=$(downgrade_call ENABLE 3.4)
    event "downgrade ENABLE 3.4 proposed (answer: $out)"
    out=$(downgrade_call VALIDATE 3.4)
    case "$out" in *'downgrade job in progress'*) ;; *) die "downgrade ENABLE did not take effect: VALIDATE says $out";; esac
    event "verified: downgrade enabled (VALIDATE: $out)"
    kv put downgrade/enabled yes
    checkpoint downgrade-enabled
    kv put downgrade/enabled-2 yes
    out=$(downgrade_call CANCEL)
    case "$out" in *'no inflight downgrade'*) die "downgrade CANCEL: $out";; esac
    event "downgrade CANCEL proposed (answer: $out)"
    out=$(downgrade_call VALIDATE 3.4)
    case "$out" in *'"version":"3.5.0"'*) ;; *) die "downgrade CANCEL did not take effect: VALIDATE says $out";; esac
    event "verified: downgrade cancelled (VALIDATE accepted again)"
    kv put downgrade/cancelled yes
    checkpoint downgrade-cancelled
}

# etcdctl 3.5 `endpoint health`: a linearizable Get("health") and, per endpoint, AlarmList, which
# etcd 3.5 proposes through raft (Maintenance.Alarm -> raftRequest: an AlarmRequest GET entry).
endpoint_health() {
    local v; v=$(voters | tr '\n' ' ')
    # shellcheck disable=SC2086
    ctl --endpoints="$(urls $v)" endpoint health >>"$LOGDIR/$CAPNAME-client.log" 2>&1 || die "endpoint health failed"
    event "endpoint health on $(voters | tr '\n' ' ')(Get health + AlarmList per endpoint)"
}

cluster_version_of() { # cluster version member NAME reports on /version
    timeout 20 curl -sS -m 10 "$(curl_url "$1")/version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["etcdcluster"])'
}

# 1 MiB single-byte values until every listed member cut its WAL (64,000,000-byte segments);
# only 8 keys, compacted every 12 puts, so the backend db stays small. kill -9 of KILL at put 34,
# restart at put 54 (INITIAL_CLUSTER for its restart).
large_values() { # large_values KILL INITIAL_CLUSTER
    local chars=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ
    local nbig=72 size=1048576 c i R ldr other
    # the victim must not lead (a put in flight when the leader dies times out)
    ldr=$(leader_name) || die "no leader"
    if [ "$ldr" = "$1" ]; then
        other=$(voters | grep -vx "$1" | head -n1)
        kv move-leader "$(id_hex_of "$other")"
        event "move-leader $ldr -> $other (so that the kill -9 victim $1 is a follower)"
    fi
    for i in $(seq 0 $((nbig - 1))); do
        c=${chars:$((i % ${#chars})):1}
        head -c "$size" /dev/zero | tr '\0' "$c" | kv put "blob/$(printf '%02d' $((i % 8)))"
        if [ $((i % 12)) = 11 ]; then R=$(current_rev); kv compaction "$R"; fi
        if [ "$i" = 34 ]; then kill9_member "$1"; fi
        if [ "$i" = 54 ]; then start_member "$1" existing "$2"; wait_up "$1" 90; fi
    done
    event "$nbig puts of $size-byte values (keys blob/00..blob/07, compaction every 12 puts)"
    wait_caught_up "$1" 180
}

# ============================================================================== capture D
capture_d() {
    begin_capture cluster-d raft-replay-cluster-d 50 \
        "etcd $V35: 3 members d1-d3; learner d4 added+promoted before the first snapshot; cluster-a's KV workload (puts incl. leases, prev-kv, ignore-value, ignore-lease, empty value; deletes single/range/prefix/from-key/no-op; txns with value/version/create/mod/lease compares, success and failure branches; lease grant/keep-alive-once/revoke/expiry; failing requests); etcdctl endpoint health (Alarm GET through raft); compaction; downgrade validate/enable/cancel to 3.4 (gRPC gateway); remove d3; 72 puts of 1 MiB values (one repeated byte each, 8 keys, compaction every 12 puts) so every live member cuts a WAL segment, with kill -9 of d2 after put 34 and its restart after put 54; prefix delete, final txn and lease revoke; endpoint health; clean SIGTERM stop" \
        "$V35"
    define_member d1 26791 26891 "original voter" "member from bootstrap (WAL starts at index 1 with the bootstrap ConfChanges); WAL has a cut segment" "$V35"
    define_member d2 26792 26892 "original voter; kill -9 + restart" "killed with SIGKILL after the 35th 1 MiB put, restarted from its data dir after the 55th and caught up from the leader's log; WAL has a cut segment" "$V35"
    define_member d3 26793 26893 "original voter; removed" "removed from the cluster (member remove) after the downgrade round; etcd exits by itself (see events); its log stops early" "$V35"
    define_member d4 26794 26894 "learner -> voter (entries)" "added with member add --learner before the leader took any raft snapshot, so it replicated from index 1 (asserted); promoted; WAL has a cut segment" "$V35"
    local IC="d1=$(peer_url d1),d2=$(peer_url d2),d3=$(peer_url d3)" n f R

    start_member d1 new "$IC"; start_member d2 new "$IC"; start_member d3 new "$IC"
    wait_all_up d1 d2 d3
    add_learner d4
    wait_caught_up d4
    promote d4
    wait_caught_up d4
    python3 "$HELPER" walsummary "$CAP/data/d4" | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["first_entry_index"] == 1, s["first_entry_index"]' \
        || die "d4 should have replicated from index 1"
    checkpoint bootstrap-and-d4-promoted

    kv_workload_a d1
    endpoint_health
    checkpoint after-kv-workload

    R=$(current_rev)
    kv compaction --physical $((R - 6))
    event "compaction --physical $((R - 6)) (current revision $R)"
    kv put after-compaction 1; kv put k3 "k3-after-compaction"; kv del k6
    sleep 2
    checkpoint after-compaction

    [ "$(cluster_version_of d1)" = 3.5.0 ] || die "cluster version is not 3.5.0"
    downgrade_round

    remove_member d3 d1 d2 d4
    kv put after-remove-d3 1
    checkpoint after-remove-d3

    large_values d2 "d1=$(peer_url d1),d2=$(peer_url d2),d4=$(peer_url d4)"
    checkpoint after-large-values
    for n in d1 d2 d4; do
        f=$(ls "$CAP/data/$n/member/wal" | grep -c '\.wal$')
        [ "$f" -ge 2 ] || die "$n has only $f WAL file(s); expected a segment cut"
    done
    event "verified: d1, d2, d4 cut their WAL (>= 2 .wal files)"

    kv del --prefix blob/0         # blob/00..07
    printf 'value("after-remove-d3") = "1"\n\nput final/txn yes\ndel k3\n\nput final/txn no\n\n' | kv_txn
    local L5; L5=$(ctl --endpoints="$(urls d1)" lease grant 3600 | awk '{print $2}')
    kv put final/leased 1 --lease="$L5"
    kv lease revoke "$L5"
    event "final writes (lease L5=$L5 granted, 1 key attached, revoked)"
    endpoint_health
    R=$(current_rev)
    kv compaction --physical "$R"
    event "compaction --physical $R (head revision)"
    sleep 2
    checkpoint final
    finish_capture
}

# ============================================================================== capture E
# Rolling upgrade of one member: stop it (SIGTERM), write while it is down, restart it on etcd
# 3.5 from the same data dir, wait until it caught up, write again.
upgrade_member() { # upgrade_member NAME INITIAL_CLUSTER
    local n=$1 i
    stop_member "$n"
    for i in $(seq 1 10); do kv put "upgrade/$n/while-down/$i" "$i"; done
    printf 'version("upgrade/%s/while-down/1") = "1"\n\nput upgrade/%s/txn down\n\nput upgrade/%s/txn failed\n\n' "$n" "$n" "$n" | kv_txn
    BIN[$n]=$V35
    start_member "$n" existing "$2"
    wait_up "$n" 90
    wait_caught_up "$n"
    for i in $(seq 1 10); do kv put "upgrade/$n/after/$i" "$i"; done
    checkpoint "upgraded-$n"
}

capture_e() {
    begin_capture cluster-e raft-replay-cluster-e 25 \
        "rolling upgrade etcd $V34 -> $V35: 3 members e1-e3 started on $V34; workload (puts, txns with both branches, lease grant + attached keys, delete range/prefix, compaction); then each member in turn is stopped (SIGTERM), writes continue while it is down, it is restarted on $V35 from the same data dir and more writes follow; after the last one the leader moves the cluster version to 3.5; more workload on 3.5 (lease grant/revoke, txns, deletes, compaction, etcdctl endpoint health), downgrade validate/enable/cancel to 3.4 (gRPC gateway); clean SIGTERM stop. etcdctl $V34 until every member runs $V35, etcdctl $V35 after" \
        "$V34 $V35"
    define_member e1 27791 27891 "voter; upgraded first" "started on $V34, restarted on $V35 (manifest runs: which binary wrote which WAL entries)"
    define_member e2 27792 27892 "voter; upgraded second" "started on $V34, restarted on $V35"
    define_member e3 27793 27893 "voter; upgraded last" "started on $V34, restarted on $V35"
    local IC="e1=$(peer_url e1),e2=$(peer_url e2),e3=$(peer_url e3)" i n R L1 deadline

    start_member e1 new "$IC"; start_member e2 new "$IC"; start_member e3 new "$IC"
    wait_all_up e1 e2 e3
    for i in $(seq 1 20); do kv put "e/$i" "v$i"; done
    printf 'value("e/1") = "v1"\nversion("e/2") = "1"\n\nput e/txn success\ndel e/3\n\nput e/txn failure\n\n' | kv_txn
    printf 'value("e/1") = "nope"\n\nput e/txn2 success\n\nput e/txn2 failure\ndel e/4 e/6\n\n' | kv_txn
    L1=$(ctl --endpoints="$(urls e1)" lease grant 3600 | awk '{print $2}')
    event "lease grant L1=$L1 (ttl 3600)"
    kv put lease/1 x --lease="$L1"; kv put lease/2 y --lease="$L1"
    kv del --prefix e/1            # e/1, e/10..19
    R=$(current_rev)
    kv compaction --physical $((R - 5))
    event "compaction --physical $((R - 5)) (current revision $R)"
    sleep 2
    checkpoint all-on-3.4

    for n in e1 e2 e3; do upgrade_member "$n" "$IC"; done
    deadline=$(( $(date +%s) + 90 ))
    until [ "$(cluster_version_of e1)" = 3.5.0 ] && [ "$(cluster_version_of e2)" = 3.5.0 ] && [ "$(cluster_version_of e3)" = 3.5.0 ]; do
        (( $(date +%s) < deadline )) || die "cluster version did not move to 3.5.0"
        sleep 1
    done
    event "cluster version 3.5.0 on e1, e2, e3"
    ETCDCTL=${ETCDCTL_BIN[$V35]}
    event "etcdctl is now $V35"
    kv put after-upgrade 1
    checkpoint cluster-version-3.5

    local L2; L2=$(ctl --endpoints="$(urls e1)" lease grant 3600 | awk '{print $2}')
    event "lease grant L2=$L2 (ttl 3600)"
    kv put lease/3 z --lease="$L2"
    kv lease keep-alive --once "$L2"
    printf 'value("after-upgrade") = "1"\nmod("lease/1") > "0"\n\nput post/txn success\ndel e/2\n\nput post/txn failure\n\n' | kv_txn
    printf 'create("never") > "0"\n\nput post/txn2 no\n\nput post/txn2 failure-branch\ndel e/5 e/8\n\n' | kv_txn
    kv lease revoke "$L1"
    event "lease revoke L1=$L1 (deletes lease/1, lease/2)"
    endpoint_health
    R=$(current_rev)
    kv compaction --physical $((R - 3))
    event "compaction --physical $((R - 3)) (current revision $R)"
    sleep 2
    checkpoint after-3.5-workload

    downgrade_round
    kv lease revoke "$L2"
    event "lease revoke L2=$L2 (deletes lease/3)"
    kv put final 1
    checkpoint final
    finish_capture
}

# ============================================================================== capture F (etcd 3.5)
# Production-shaped data dirs on etcd 3.5.30: a cluster restored from `etcdctl snapshot save`,
# members that joined through a leader snapshot, WAL segments purged (--max-wals 2), and a member
# SIGKILLed in the middle of a write burst (its db behind its WAL). Self-contained: its own etcd
# binaries (tools/etcd-bin/fetch.sh), its own start function (extra flags), its own checkpoint of
# the killed member restarted on a copy of its data dir.
F_BIN=""
F_FLAGS=(--max-wals 2 --max-snapshots 2)

f_start() { # f_start NAME DATADIR CLIENTPORT PEERPORT [ETCD FLAGS...]  (tracked like start_member)
    local n=$1 dd=$2 cp=$3 pp=$4; shift 4
    port_free "$cp" && port_free "$pp" || die "port $cp or $pp in use"
    "$F_BIN/etcd" --name "$n" --data-dir "$dd" \
        --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
        --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
        --initial-cluster-token "$TOKEN" --snapshot-count "$SNAPCOUNT" "${F_FLAGS[@]}" \
        --logger zap --log-outputs stderr "$@" >>"$LOGDIR/$CAPNAME-$n.log" 2>&1 &
    PIDS[$n]=$!
    event "start $n on $dd (pid ${PIDS[$n]}; $*)"
}

f_member() { # f_member NAME new|existing INITIAL_CLUSTER (a cluster-f member on its own ports)
    f_start "$1" "$CAP/data/$1" "${CPORT[$1]}" "${PPORT[$1]}" \
        --initial-cluster "$3" --initial-cluster-state "$2"
    LIVE+=("$1")
}

f_add_learner() { # member add --learner, start it; wait until it has caught up
    local n=$1 f="$CAP/tmp.add.$1.json" ml="$CAP/tmp.ml.json" id ic v
    v=$(voters | tr '\n' ' ')
    # shellcheck disable=SC2086
    ctl_member -w json --endpoints="$(urls $v)" member add "$n" --learner --peer-urls="$(peer_url "$n")" >"$f" || die "member add $n failed"
    id=$(python3 "$HELPER" add-id "$f")
    event "member add --learner $n (id $id)"
    member_list_json >"$ml" || die "member list failed"
    ic=$(python3 "$HELPER" initial-cluster "$ml" "$n" "$(peer_url "$n")")
    LEARNERS+=("$n")
    f_member "$n" existing "$ic"
    wait_up "$n" 120
    wait_caught_up "$n" 180
}

f_assert_leader_snapshot() { # the member's WAL: a snapshot record S > 0, entries from S+1
    python3 "$HELPER" walsummary "$CAP/data/$1" >"$CAP/tmp.ws.$1.json"
    python3 - "$CAP/tmp.ws.$1.json" "$1" <<'EOF' || die "$1 did not join through a leader snapshot"
import json, sys
s = json.load(open(sys.argv[1]))
snaps = [x["index"] for x in s["snapshot_records"] if x["index"] > 0]
assert snaps and s["first_entry_index"] == snaps[0] + 1, (snaps, s["first_entry_index"])
print("%s: WAL snapshot record at %d, first entry %d" % (sys.argv[2], snaps[0], s["first_entry_index"]), file=sys.stderr)
EOF
    event "verified: $1's WAL starts with a leader snapshot record"
}

f_assert_purged() { # every live member's first WAL segment is gone (purged by --max-wals 2)
    local n deadline=$(( $(date +%s) + 90 ))
    for n in "${LIVE[@]}"; do
        until ! ls "$CAP/data/$n/member/wal" | grep -q '^0000000000000000-'; do
            (( $(date +%s) < deadline )) || die "$n: WAL segment 0 never purged: $(ls "$CAP/data/$n/member/wal")"
            sleep 2   # etcd purges every 30 s
        done
        event "verified: $n's WAL segments purged ($(ls "$CAP/data/$n/member/wal" | tr '\n' ' '))"
    done
}

f_assert_db_behind() { # the SIGKILLed member's db is behind its WAL (where raft-replay is built)
    local tool="$REPO_ROOT/target/debug/raft-replay" ci last
    [ -x "$tool" ] || tool="$REPO_ROOT/target/release/raft-replay"
    if [ ! -x "$tool" ]; then log "raft-replay not built: the db/WAL gap of $1 is not checked"; return 0; fi
    ci=$("$tool" db "$CAP/data/$1" 2>/dev/null | sed -n 's/.*consistent index \([0-9]*\).*/\1/p' | head -n 1)
    last=$("$tool" dump --summary "$CAP/data/$1" 2>/dev/null | sed -n 's/^index range: [0-9]* ..= \([0-9]*\)$/\1/p')
    [ -n "$ci" ] && [ -n "$last" ] || die "cannot read $1's consistent index ($ci) or last WAL index ($last)"
    event "$1: db consistent index $ci, last WAL entry $last ($((last - ci)) entries behind)"
    [ $((last - ci)) -ge 10 ] || die "$1's db is only $((last - ci)) entries behind its WAL"
}

f_source_snapshot() { # a single-member source cluster (not archived); `etcdctl snapshot save`
    local src="$CAP/source" out=$1 L
    CPORT[src]=28790; PPORT[src]=28890
    f_start src "$src" 28790 28890 --initial-cluster "src=$(peer_url src)" --initial-cluster-state new
    LIVE+=(src)
    wait_up src 60
    for i in $(seq 1 30); do kv put "app/config/$i" "v$i"; done
    for i in $(seq 1 10); do kv put "app/config/$i" "w$i"; done
    L=$(ctl --endpoints="$(urls src)" lease grant 86400 | awk '{print $2}')
    kv put app/session/1 s1 --lease="$L"; kv put app/session/2 s2 --lease="$L"
    printf 'value("app/config/1") = "w1"\n\nput app/txn ok\ndel app/config/30\n\nput app/txn no\n\n' | kv_txn
    kv del --prefix app/config/2            # app/config/2, 20..29
    kv compaction "$(( $(current_rev) - 5 ))"
    ctl --endpoints="$(urls src)" snapshot save "$out" >>"$LOGDIR/$CAPNAME-client.log" 2>&1 || die "snapshot save failed"
    event "source cluster: snapshot save (revision $(current_rev), lease $L with 2 keys)"
    stop_member src
    unset 'CPORT[src]' 'PPORT[src]'
    rm -rf "$src"
}

f_killed_copy_checkpoint() { # NAME: restart etcd on a copy of NAME's data dir, alone; record HashKV
    local n=$1 copy="$CAP/$1-copy" dir line
    cp -a "$CAP/data/$n" "$copy"
    # --force-new-cluster: the copy boots alone (the live members never learn of it) and applies
    # its WAL up to max(HardState.commit, consistent index), discarding what lies above
    # (server/etcdserver/raft.go restartAsStandaloneNode); its conf changes add no KV revision.
    CPORT[$n-copy]=28799; PPORT[$n-copy]=28899
    f_start "$n-copy" "$copy" 28799 28899 --force-new-cluster
    LIVE+=("$n-copy")
    wait_up "$n-copy" 90
    dir="$CAP/checkpoints/$(printf '%02d' "$CPN")-$n-killed-restarted-on-copy"
    mkdir -p "$dir"
    status_json "$n-copy" >"$dir/$n.status1.json" || die "status of $n-copy"
    ctl -w json --endpoints="$(curl_url "$n-copy")" endpoint hashkv >"$dir/$n.hashkv.json" || die "hashkv of $n-copy"
    status_json "$n-copy" >"$dir/$n.status2.json" || die "status of $n-copy"
    ctl -w json --endpoints="$(curl_url "$n-copy")" member list >"$dir/memberlist.json" || die "member list of $n-copy"
    line=$(grep -h '"forcing restart member"\|discarding uncommitted WAL entries' "$LOGDIR/$CAPNAME-$n-copy.log" | tr '\n' ' ')
    python3 - "$dir" "$n" "$line" <<'EOF'
import json, sys
d, n, line = sys.argv[1:4]
json.dump({"label": n + "-killed-restarted-on-copy",
           "after_event": "etcd restarted alone (--force-new-cluster) on a copy of %s's data dir as SIGKILL left it" % n,
           "live": [n], "learners": [], "etcd_log": line}, open(d + "/meta.json", "w"))
EOF
    CPN=$((CPN + 1))
    stop_member "$n-copy"
    unset "CPORT[$n-copy]" "PPORT[$n-copy]"
    rm -rf "$copy"
}

f_fix_manifest() { # the killed member's checkpoint: the index whose KV state etcd hashed
    python3 - "$OUT_DIR/$CAPNAME/manifest.json" "$CAP/checkpoints" <<'EOF'
import json, os, re, sys
p, cps = sys.argv[1:3]
m = json.load(open(p))
m["etcd_flags"]["other"] = "--max-wals 2 --max-snapshots 2; otherwise defaults (heartbeat 100ms, election 1000ms, backend batch interval 100ms, no auto-compaction)"
m["field_notes"]["raft_index"] = "Status.raftIndex (the commit index)"
m["field_notes"]["killed_restarted_on_copy"] = ("checkpoint <name>-killed-restarted-on-copy: etcd --force-new-cluster on a copy of the SIGKILLed member's data dir; "
    "raft_applied_index is the index whose KV state it hashed: its WAL applied up to max(HardState.commit, consistent index) (etcd log 'discarding uncommitted WAL entries' "
    "commit-index-from-wal, else the last WAL entry); etcd_status_applied_index is what Status reported, after the conf changes --force-new-cluster appends (no KV revision)")
for cp in m["checkpoints"]:
    if not cp["label"].endswith("-killed-restarted-on-copy"):
        continue
    meta = json.load(open(os.path.join(cps, [x for x in sorted(os.listdir(cps)) if x.endswith(cp["label"])][0], "meta.json")))
    e = cp["members"][0]
    name = e["name"]
    ws = [x for x in m["members"] if x["name"] == name][0]["wal_summary"]
    hit = re.search(r'"commit-index-from-wal":(\d+)', meta["etcd_log"])
    idx = int(hit.group(1)) if hit else ws["last_entry_index"]
    e["etcd_status_applied_index"] = e["raft_applied_index"]
    e["raft_applied_index"] = idx
    e["etcd_log"] = meta["etcd_log"]
json.dump(m, open(p, "w"), indent=1)
open(p, "a").write("\n")
EOF
}

capture_f() {
    "$REPO_ROOT/tools/etcd-bin/fetch.sh" 3.5.30 sid || die "tools/etcd-bin/fetch.sh 3.5.30 sid failed"
    F_BIN="$REPO_ROOT/target/etcd/3.5.30/usr/bin"
    local saved_path=$PATH saved_version=$ETCD_VERSION
    PATH="$F_BIN:$PATH"   # etcdctl 3.5.30 for every ctl/kv call of this capture
    ETCD_VERSION=$("$F_BIN/etcd" --version | awk '/^etcd Version:/ {print $3}')
    begin_capture cluster-f raft-replay-cluster-f 100 \
        "etcd 3.5.30, production-shaped (--snapshot-count 100 --max-wals 2 --max-snapshots 2): a single-member source cluster (not archived: puts, a leased pair, txn, deletes, compaction) saved with etcdctl snapshot save; f1 restored from that file with etcdutl snapshot restore, serving; learners f2, f3 join through a leader snapshot and are promoted; 150 puts of 1 MiB values so every member cuts WAL segments and purges the first (asserted); big keys deleted, compacted, defragmented; a burst of small puts during which f3 is SIGKILLed (its db, committed every 100 ms, behind its WAL); etcd restarted alone (--force-new-cluster) on a copy of f3's data dir gives the expected HashKV; more writes on f1, f2; clean SIGTERM stop of f1, f2 (f3 stays as SIGKILL left it)"
    local i snap="$CAP/source.snapshot.db" IC
    define_member f1 28791 28891 "restored from snapshot save; voter" "etcdutl snapshot restore of a snapshot save file from a single-member source cluster (its db starts at the source's revision, consistent index 1), then served and led; WAL segments purged (--max-wals 2)"
    define_member f2 28792 28892 "learner from leader snapshot -> voter" "joined the restored cluster as a learner through a leader snapshot, promoted; WAL segments purged"
    define_member f3 28793 28893 "learner from leader snapshot -> voter; SIGKILL mid-burst" "joined through a leader snapshot, promoted; WAL segments purged; killed with SIGKILL in a burst of puts and never restarted: its db's consistent index is behind its last WAL entry; checkpoint f3-killed-restarted-on-copy has etcd's own HashKV after a restart on a copy"
    IC="f1=$(peer_url f1)"

    # -- source cluster -> snapshot save -> restore into f1 ------------------------------------
    f_source_snapshot "$snap"
    "$F_BIN/etcdutl" snapshot restore "$snap" --name f1 --data-dir "$CAP/data/f1" \
        --initial-cluster "$IC" --initial-cluster-token "$TOKEN" --initial-advertise-peer-urls "$(peer_url f1)" \
        >>"$LOGDIR/$CAPNAME-client.log" 2>&1 || die "etcdutl snapshot restore failed"
    event "etcdutl snapshot restore into f1"
    f_member f1 new "$IC"
    wait_up f1 60
    for i in $(seq 1 10); do kv put "restored/$i" "r$i"; done
    kv del app/config/3
    checkpoint restored-f1-serving

    # -- learners join through a leader snapshot, promoted --------------------------------------
    f_add_learner f2; f_assert_leader_snapshot f2; promote f2; wait_caught_up f2
    f_add_learner f3; f_assert_leader_snapshot f3; promote f3; wait_caught_up f3
    printf 'value("restored/1") = "r1"\n\nput grown/txn yes\ndel restored/2\n\nput grown/txn no\n\n' | kv_txn
    checkpoint grown-to-three

    # -- large values: segments cut, the first purged (--max-wals 2) ----------------------------
    local chars=abcdefghijklmnopqrstuvwxyz0123456789 c R
    for i in $(seq 0 149); do
        c=${chars:$((i % ${#chars})):1}
        head -c 1048576 /dev/zero | tr '\0' "$c" | kv put "big/$((i % 6))"
        if (( i % 50 == 49 )); then kv compaction --physical "$(current_rev)"; fi
    done
    event "150 puts of 1 MiB values (keys big/0..big/5), compacted every 50"
    kv del --prefix big/
    R=$(current_rev); kv compaction --physical "$R"
    event "del --prefix big/; compaction --physical $R"
    sleep 2
    for i in "${LIVE[@]}"; do ctl --endpoints="$(curl_url "$i")" defrag >>"$LOGDIR/$CAPNAME-client.log" 2>&1 || die "defrag $i"; done
    event "defrag f1 f2 f3 (local, no raft entry)"
    f_assert_purged
    checkpoint segments-purged

    # -- burst; SIGKILL f3 in the middle --------------------------------------------------------
    # 16 clients keep raft batching entries, so the 100 ms backend commit lags the WAL by tens
    BULK_PROCS=16 bulk_puts 6000 burst/ 400 f1 f2 &
    local bp=$! a0 deadline=$(( $(date +%s) + 60 ))
    a0=$(applied_of f3)
    until [ "$(applied_of f3 || echo 0)" -ge $((a0 + 1500)) ]; do
        (( $(date +%s) < deadline )) || die "the burst did not reach f3"; sleep 0.2
    done
    kill9_member f3
    wait "$bp" || die "bulk puts during the kill failed"
    f_assert_db_behind f3
    f_killed_copy_checkpoint f3
    for i in $(seq 1 20); do kv put "after-kill/$i" "$i"; done
    printf 'version("after-kill/1") = "1"\n\nput after-kill/txn yes\n\nput after-kill/txn no\n\n' | kv_txn
    R=$(current_rev); kv compaction "$((R - 100))"
    event "writes after the kill; compaction $((R - 100))"
    checkpoint final
    finish_capture
    f_fix_manifest
    PATH=$saved_path; ETCD_VERSION=$saved_version
}

# ============================================================================== main
main() {
    case "$WHAT" in all|a|b|c|d|e|f) ;; *) echo "usage: $0 [all|a|b|c|d|e|f]" >&2; exit 2;; esac
    exec </dev/null      # etcdctl put/txn read stdin when no value is given; never block on a tty
    ensure_deps
    WORK="${WORK_DIR:-$(mktemp -d /tmp/raft-replay-capture.XXXXXX)}"
    mkdir -p "$WORK"
    LOGDIR="$WORK/logs"; mkdir -p "$LOGDIR" "$OUT_DIR"
    trap cleanup EXIT
    trap 'log "interrupted"; exit 130' INT TERM
    # hard wall-clock bound: SIGTERM ourselves (cleanup trap then stops every etcd we started)
    ( end=$(( $(date +%s) + MAX_SECONDS ))
      while sleep 2; do
          if (( $(date +%s) >= end )); then echo "[capture] MAX_SECONDS=$MAX_SECONDS exceeded" >&2; kill -TERM $$; exit 0; fi
      done ) </dev/null &
    WATCHDOG_PID=$!
    case "$WHAT" in all|d|e) ensure_etcd35;; esac
    log "etcd $ETCD_VERSION; work dir $WORK; logs in $LOGDIR; output $OUT_DIR"
    case "$WHAT" in
        all) capture_a; capture_b; capture_c; capture_d; capture_e; capture_f;;
        a) capture_a;;
        b) capture_b;;
        c) capture_c;;
        d) capture_d;;
        e) capture_e;;
        f) capture_f;;
    esac
    FAILED=0
    log "done in $(( $(date +%s) - T0 ))s"
}

main; exit $?   # keep on one line: bash reads scripts incrementally
