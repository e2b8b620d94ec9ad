#!/bin/sh
# Make sure Debian's `docker-registry` (CNCF distribution 2.8) is installed: the registry tests
# and bench/bench_pull.py start it on a loopback port. Idempotent; does nothing when the binary
# is already there. Works as root (no sudo needed) or with sudo available.
set -eu
for bin in docker-registry /usr/bin/docker-registry /usr/sbin/docker-registry; do
    if command -v "$bin" >/dev/null 2>&1; then
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-registry: apt-get not found; install CNCF distribution (docker-registry) by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "ensure-registry: not root and no sudo; run: apt-get install -y docker-registry" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends docker-registry >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends docker-registry >/dev/null
}
# The package starts a system service on :5000 where systemd runs; the tests do not use it.
command -v docker-registry >/dev/null 2>&1
