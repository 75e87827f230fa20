#!/bin/sh
# deps.sh — install the Debian packages zapc needs to build, test and run.
#
# Idempotent: asks dpkg which packages are missing and installs only those,
# running 'apt-get update' once first.  Called by every make target that
# builds (make deps), so a fresh Debian 12 machine needs nothing else.
# Set ZAPC_NO_DEPS=1 to skip (e.g. packaging builds without root).
set -eu

[ "${ZAPC_NO_DEPS:-0}" = 1 ] && exit 0

# Build: compiler, libraries and code generators.
BUILD="build-essential pkg-config libevent-dev libprotobuf-c-dev protobuf-c-compiler
libssl-dev libnetfilter-queue-dev libmnl-dev libnl-3-dev libnl-route-3-dev
libzstd-dev liblz4-dev clang libbpf-dev"
# Run: what the agent and the simulated cluster use.
RUN="iproute2 conntrack util-linux procps mpich libmpich-dev libbpf1"
# Test: real programs the tests checkpoint, and tools they observe with.
TEST="perl python3 sqlite3 bash coreutils tcpdump socat netcat-openbsd
iputils-ping psmisc xxd redis-server redis-tools nftables
xvfb xterm x11-apps x11-utils xfonts-base strace"

missing=""
for p in $BUILD $RUN $TEST; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing (run 'make deps' as root)" >&2
	exit 1
fi
echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=900 update -qq
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $missing
