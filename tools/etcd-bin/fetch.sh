#!/bin/sh
# Fetch etcd's binaries (the server `etcd`, `etcdctl`, `etcdutl`) of one version from Debian's
# archive, for the benchmarks that compare against them (benches/db.rs: `etcdutl snapshot
# status`) and the upgrade rehearsal's tests (tests/gate_rehearse.rs: `gate --rehearse etcd`).
#
#   tools/etcd-bin/fetch.sh VERSION SUITE      e.g. tools/etcd-bin/fetch.sh 3.5.30 sid
#
# Output: <repo>/target/etcd/VERSION/usr/bin/{etcd,etcdctl,etcdutl}. Idempotent: does nothing when
# target/etcd/VERSION/usr/bin/etcd and etcdutl exist.
#
# The system's apt sources are never changed: apt runs on a private state under
# target/apt-SUITE/ (sources.list, lists, cache), pointed at the same mirror host the system's
# sources use, signed by the same keyring. `apt-get download` fetches the .debs only (no install,
# no dependency resolution); `dpkg-deb -x` unpacks them. Debian's 3.5 packaging ships `etcdutl`
# in `etcd-server` (beside `etcd`) and `etcdctl` in `etcd-client`, so both are fetched: Go
# binaries that need only libc6. Fails if SUITE does not carry VERSION.
set -eu

version=${1:?usage: fetch.sh VERSION SUITE}
suite=${2:?usage: fetch.sh VERSION SUITE}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest=$root/target/etcd/$version
if [ -x "$dest/usr/bin/etcdutl" ] && [ -x "$dest/usr/bin/etcd" ]; then
    exit 0
fi

# The mirror host the system's apt already uses (deb822 `URIs:` or one-line `deb URL`).
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -n -e 's|^URIs: *\(https\{0,1\}://[^ ]*/debian\)/*$|\1|p' -e 's|^deb  *\(\[[^]]*\]  *\)\{0,1\}\(https\{0,1\}://[^ ]*/debian\)/* .*|\2|p' |
    head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

state=$root/target/apt-$suite
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/debs"
echo "deb [signed-by=$keyring] $mirror $suite main" >"$state/sources.list"
set -- -o Dir::State::Lists="$state/lists" -o Dir::Etc::SourceList="$state/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null -o Dir::Cache="$state/cache" -o APT::Get::List-Cleanup=0 \
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root
echo "fetch.sh: apt-get update ($mirror $suite, private state in $state)" >&2
apt-get -q "$@" update >&2
tmp=$dest.partial.$$
rm -rf "$tmp"
mkdir -p "$tmp"
for package in etcd-server etcd-client; do
    candidate=$(apt-cache "$@" policy $package | sed -n 's/^ *Candidate: *//p')
    case $candidate in
    "$version"-* | "$version"+* | "$version") ;;
    *)
        echo "fetch.sh: $suite carries $package '$candidate', not $version" >&2
        rm -rf "$tmp"
        exit 1
        ;;
    esac
    (cd "$state/debs" && rm -f ${package}_*.deb && apt-get -q "$@" download "$package=$candidate" >&2)
    dpkg-deb -x "$state"/debs/${package}_*.deb "$tmp"
done
if [ ! -x "$tmp/usr/bin/etcdutl" ] || [ ! -x "$tmp/usr/bin/etcd" ]; then
    echo "fetch.sh: no usr/bin/etcdutl or usr/bin/etcd in etcd-server/etcd-client $version:" >&2
    ls -l "$tmp/usr/bin" >&2
    rm -rf "$tmp"
    exit 1
fi
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp" "$dest"
"$dest/usr/bin/etcdutl" version >&2
