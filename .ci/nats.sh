#!/usr/bin/env bash
# comet-forward's tests against a real `nats-server -js` (Debian package
# nats-server; the tests start and stop their own servers on free ports on
# 127.0.0.1), and `comet forward`'s. Installs the server if missing, then
# runs the tests (which fail, rather than pass unrun, without a server).
# With --install-only it installs the server if needed and prints its path
# (what .ci/run uses before `cargo test --workspace`).
set -euo pipefail
cd "$(dirname "$0")/.."

find_server() {
    command -v nats-server 2>/dev/null && return 0
    for p in /usr/sbin/nats-server /usr/local/sbin/nats-server /usr/local/bin/nats-server; do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    return 1
}

if ! server=$(find_server); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >/dev/null
    server=$(find_server)
fi
if [ "${1:-}" = "--install-only" ]; then
    echo "$server"
    exit 0
fi
echo "using $server ($("$server" --version))"

export NATS_SERVER="$server"
cargo test -p comet-forward
cargo test -p comet-cli --features forward --test forward
