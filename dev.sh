#!/usr/bin/env bash
# The two commands of the quick start:
#   ./dev.sh run    install what is missing, build, and run `nve serve` with embedded defaults
#   ./dev.sh test   install what is missing, then format check, clippy and every test
# Idempotent and quiet when everything is already installed. Debian/Ubuntu (apt-get).
set -euo pipefail
cd "$(dirname "$(realpath "$0")")"

log() { printf '\033[1m==> [%4ss] %s\033[0m\n' "$SECONDS" "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Build: Rust's -sys crates for GStreamer. Run: the plugins the pipelines use.
BUILD_PKGS="build-essential pkg-config curl ca-certificates libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libges-1.0-dev"
RUN_PKGS="gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools ges1.0-tools fonts-dejavu-core"
TEST_PKGS="ffmpeg postgresql redis-server python3 python3-venv"

apt_ensure() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

rust_ensure() {
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    log "installing the Rust toolchain (rustup)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain none
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  # rust-toolchain.toml pins the version; rustup installs it on first use if needed.
  cargo --version >/dev/null
}

ui_ensure() {
  # The web UI is built when it exists in the tree.
  if [ -f ui/package.json ]; then
    if ! command -v npm >/dev/null 2>&1; then apt_ensure nodejs npm; fi
    if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules ]; then
      log "installing UI packages (npm ci)"
      (cd ui && npm ci --no-audit --no-fund --loglevel=error)
    fi
    log "building the UI"
    (cd ui && npm run --silent build)
  fi
}

postgres_ensure() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  log "starting PostgreSQL"
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$version" ]; then
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
      || $SUDO pg_ctlcluster "$version" main start
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
  echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1
}

postgres_url() {
  # Tests create and drop their own databases as `postgres`. Machines set up for this project
  # trust local connections; a stock Debian cluster wants a password, so give it one.
  if [ -n "${NVE_TEST_POSTGRES_URL:-}" ]; then return; fi
  if psql "postgres://postgres@127.0.0.1:5432/postgres" -qAtc 'select 1' >/dev/null 2>&1 </dev/null; then
    return
  fi
  log "setting a password for the local postgres role (tests connect over TCP)"
  $SUDO -u postgres psql -qAtc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 \
    || su postgres -c "psql -qAtc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  export NVE_TEST_POSTGRES_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
}

redis_ensure() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 1; done
  echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1
}

moto_ensure() {
  # A real S3-compatible server for the object-storage tests (moto's server mode).
  local venv="$HOME/.cache/nve/moto-venv"
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "installing moto (S3-compatible test server) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]>=5,<6'
  fi
  export NVE_TEST_MOTO_SERVER="$venv/bin/moto_server"
}

cmd_run() {
  apt_ensure $BUILD_PKGS $RUN_PKGS
  rust_ensure
  ui_ensure
  local profile_flag=() bin=target/debug/nve
  if [ -n "${NVE_RELEASE:-}" ]; then profile_flag=(--release); bin=target/release/nve; fi
  # NVE_RELEASE is for this script; nve itself rejects NVE_* names it does not know.
  unset NVE_RELEASE
  log "building nve"
  cargo build --locked -q "${profile_flag[@]}" -p nve-api --bin nve
  # People read a terminal; machines read JSON.
  if [ -t 2 ] && [ -z "${NVE_LOG__FORMAT:-}" ]; then export NVE_LOG__FORMAT=pretty; fi
  log "starting nve serve $* (default http://127.0.0.1:8080, data in ./nve-data; the address is logged as 'nve listening'); Ctrl-C stops it"
  exec "$bin" serve "$@"
}

cmd_test() {
  apt_ensure $BUILD_PKGS $RUN_PKGS $TEST_PKGS
  rust_ensure
  postgres_ensure
  postgres_url
  redis_ensure
  moto_ensure
  ui_ensure
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --locked --workspace --all-targets -q -- -D warnings
  log "cargo test"
  cargo test --locked --workspace
  log "fuzzing the API from its OpenAPI document (schemathesis)"
  cargo build --locked -q -p nve-api --bin nve
  # One request at a time with a fixed seed: the same inputs on every run, so CI is repeatable.
  # FUZZ_WORKERS=2 FUZZ_SEED=random ./scripts/fuzz-api.sh explores races and new inputs.
  FUZZ_WORKERS=${FUZZ_WORKERS:-1} ./scripts/fuzz-api.sh target/debug/nve
  if [ -f ui/package.json ]; then
    log "UI lint, type check and tests"
    (cd ui && npm run --silent lint && npm run --silent typecheck && npm test --silent)
  fi
  log "all checks passed"
}

case "${1:-}" in
  run) shift; cmd_run "$@" ;;
  test) shift; cmd_test "$@" ;;
  *) echo "usage: $0 run [nve serve options] | test" >&2; exit 2 ;;
esac
