#!/bin/sh
# Build tools/bbolt-ref against Debian's bbolt 1.3.6 and etcd 3.4.23 source trees, offline.
#
# Works in GOPATH mode (GO111MODULE=off) with GOPATH=/usr/share/gocode, where
# Debian's golang-*-dev packages put their sources (go.etcd.io/etcd and all of
# its dependencies). No module download, no network: GOPROXY=off, GOFLAGS is
# cleared because -mod=... is rejected outside module mode.
#
# Output: <repo>/target/bbolt-ref/bbolt-ref (override with BBOLT_REF_OUT=path).
# Needs: apt-get install golang-go golang-etcd-server-dev
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${BBOLT_REF_OUT:-$root/target/bbolt-ref/bbolt-ref}
gocode=${BBOLT_REF_GOPATH:-/usr/share/gocode}

if ! command -v go >/dev/null 2>&1; then
    echo "bbolt-ref/build.sh: 'go' not found; install it with: apt-get install golang-go golang-etcd-server-dev" >&2
    exit 1
fi
if [ ! -f "$gocode/src/go.etcd.io/etcd/wal/wal.go" ] || [ ! -f "$gocode/src/go.etcd.io/bbolt/db.go" ]; then
    echo "bbolt-ref/build.sh: $gocode/src/go.etcd.io/etcd not found; install it with: apt-get install golang-etcd-server-dev golang-github-coreos-bbolt-dev" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
cd "$here"
# GOCACHE: keep the default (~/.cache/go-build) unless it is not writable.
if [ -z "${GOCACHE:-}" ]; then
    c=$(go env GOCACHE 2>/dev/null || true)
    if [ -z "$c" ] || ! mkdir -p "$c" 2>/dev/null || [ ! -w "$c" ]; then
        GOCACHE=$root/target/bbolt-ref/gocache
        export GOCACHE
    fi
fi
GOPATH=$gocode GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
    go build -trimpath -o "$out" .
echo "built $out" >&2
