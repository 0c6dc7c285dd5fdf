# shellcheck shell=sh
# Sourced by .ci/run: start Debian's docker-registry on loopback for tests/images/test_registry.py.
# Installs nothing. Exports:
#   PATCHKIT_TEST_REGISTRY=127.0.0.1:<port>     where the registry answers /v2/
#   PATCHKIT_TEST_REGISTRY_ROOT=<dir>           its filesystem storage (tests corrupt blobs there)
#   PATCHKIT_TEST_REGISTRY_PID=<pid>            stop it with: patchkit_registry_stop
# Config: listens on 127.0.0.1 only, no auth, filesystem storage in a fresh temp dir.

patchkit_registry_start() {
    _pk_bin=${PATCHKIT_REGISTRY_BIN:-docker-registry}
    if ! command -v "$_pk_bin" >/dev/null 2>&1; then
        echo "registry.sh: $_pk_bin not found (apt-get install docker-registry)" >&2
        return 1
    fi
    _pk_py=${PYTHON:-python3}
    _pk_dir=$(mktemp -d "${TMPDIR:-/tmp}/patchkit-registry.XXXXXX") || return 1
    _pk_port=$("$_pk_py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || return 1
    mkdir -p "$_pk_dir/storage"
    cat >"$_pk_dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $_pk_dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$_pk_port
  secret: patchkit-ci
YAML
    "$_pk_bin" serve "$_pk_dir/config.yml" >"$_pk_dir/registry.log" 2>&1 &
    PATCHKIT_TEST_REGISTRY_PID=$!
    PATCHKIT_TEST_REGISTRY=127.0.0.1:$_pk_port
    PATCHKIT_TEST_REGISTRY_ROOT=$_pk_dir/storage
    export PATCHKIT_TEST_REGISTRY PATCHKIT_TEST_REGISTRY_ROOT PATCHKIT_TEST_REGISTRY_PID
    # wait (up to ~15 s) until GET /v2/ answers 200
    if ! "$_pk_py" - "$_pk_port" "$PATCHKIT_TEST_REGISTRY_PID" <<'PY'
import http.client, os, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
for _ in range(150):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/v2/")
        if conn.getresponse().status == 200:
            sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("docker-registry exited")
    time.sleep(0.1)
sys.exit("docker-registry did not answer /v2/ in 15 s")
PY
    then
        echo "registry.sh: registry failed to start; log follows" >&2
        cat "$_pk_dir/registry.log" >&2
        patchkit_registry_stop
        return 1
    fi
    echo "registry.sh: docker-registry on $PATCHKIT_TEST_REGISTRY (pid $PATCHKIT_TEST_REGISTRY_PID)" >&2
}

patchkit_registry_stop() {
    if [ -n "${PATCHKIT_TEST_REGISTRY_PID:-}" ]; then
        # its exit status (143: our SIGTERM) is not the caller's: callers may run under set -e
        kill "$PATCHKIT_TEST_REGISTRY_PID" 2>/dev/null || true
        wait "$PATCHKIT_TEST_REGISTRY_PID" 2>/dev/null || true
    fi
    if [ -n "${PATCHKIT_TEST_REGISTRY_ROOT:-}" ]; then
        rm -rf "$(dirname "$PATCHKIT_TEST_REGISTRY_ROOT")"
    fi
    unset PATCHKIT_TEST_REGISTRY PATCHKIT_TEST_REGISTRY_ROOT PATCHKIT_TEST_REGISTRY_PID
}

patchkit_registry_start
