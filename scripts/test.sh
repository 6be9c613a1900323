#!/usr/bin/env bash
# Runs every Ember test on a fresh machine: installs what the tests need, then checks formatting,
# lints, builds the release binary and runs the whole suite against it. `cargo test --release`
# builds the `ember` binary the integration tests start (a separate `cargo build --release` would
# compile the crate twice: the dev-dependencies turn on a feature of a shared dependency, so the
# two builds do not share artifacts).
#
#   ./scripts/test.sh            everything
#   ./scripts/test.sh -- NAME    only tests whose name contains NAME (passed to cargo test)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Debian packages the integration tests talk to. Installed only when missing, so a second run is
# quick. (The config-engine tests need nothing beyond the Rust toolchain; peers such as Postfix,
# swaks and dnsmasq join this list with the tests that use them.)
PACKAGES=(swaks postfix dnsmasq chromium chromium-driver redis-server nats-server unbound ldnsutils)
need_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

# Python packages the tests use (installed for the python3 the tests run, only when missing):
# prometheus_client parses /metrics; dkimpy (with pynacl for Ed25519) verifies DKIM signatures.
need_python() {
    local missing=()
    python3 -c 'import prometheus_client' 2>/dev/null || missing+=(prometheus_client)
    python3 -c 'import dkim, nacl' 2>/dev/null || missing+=(dkimpy pynacl)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]} (pip)"
    python3 -m pip install -q "${missing[@]}" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "${missing[@]}"
}

command -v cargo >/dev/null || { echo "cargo not found: install Rust 1.95 (rustup) first" >&2; exit 1; }
if [ ${#PACKAGES[@]} -gt 0 ]; then need_packages; fi
need_python
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

filter=()
if [ "${1:-}" = "--" ]; then shift; filter=("$@"); fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

# The integration tests are one binary whose tests mostly wait on daemons and peers, so more
# threads than cores overlap those waits. Override with RUST_TEST_THREADS.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"

log "cargo test --release (builds the release binary; $RUST_TEST_THREADS test threads)"
cargo test --locked --release -- "${filter[@]}"

log "all tests passed"
