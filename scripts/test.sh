#!/usr/bin/env bash
# The test command: sets up everything the tests use, then runs pytest (extra arguments go
# to pytest). The README's "Run the tests" and CI (.ci/run) run exactly this:
#
#     bash scripts/test.sh
#
# As root on a fresh Debian machine it installs what is missing; without root it installs
# nothing system-wide and says what it skipped (the tests needing it then skip and say why;
# under CI=true they fail instead). Steps:
#   1. Debian tools the tests use as reference peers or services (root: apt-get install)
#   2. shared libraries the live isolation proof's daemons need, and CPython's tar test
#      archives (tests/images/test_tar_go.py) (root only)
#   3. .venv with patchkit editable and the test extras (pip)
#   4. the poste.io model releases (python3 bench/model/build.py; cached in bench/.cache)
#   5. Haraka 3.1 from npm for the plugin tests (npm ci in tests/poste/haraka)
#   6. a loopback-only registry for the registry tests (.ci/registry.sh), stopped at exit
#   7. pytest -q -p no:cacheprovider "$@"; its exit status is this script's
set -euo pipefail
cd "$(dirname "$0")/.."
ci=${CI:-false}
root=false
[ "$(id -u)" = 0 ] && root=true
say() { echo "test.sh: $*" >&2; }
# A step that cannot run: a note locally, a failure under CI=true.
cannot() {
  say "$*"
  if [ "$ci" = true ]; then say "CI=true: failing"; exit 1; fi
}

# 1. Debian tools: command:package.
tools=(git:git quilt:quilt skopeo:skopeo umoci:umoci docker-registry:docker-registry
  shellcheck:shellcheck chromium:chromium node:nodejs npm:npm zsh:zsh zstd:zstd tar:tar
  go:golang-go)
need=()
for tool in "${tools[@]}"; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
# 2. Shared libraries the model's redis-server, rspamd and dovecot binaries need in the live
# isolation proof (bench/isolation/run.py, run by .ci/run); the binaries come from the model.
# --- isolation proof packages: extend this list for bench/isolation (podman, buildah, runc) ---
# The libraries of --engine none's daemons, then --engine podman's engine (POSTE.md: Debian's
# podman, buildah, runc; conmon; debootstrap makes the Debian runtime the model lacks).
isolation=(liblzf1 libjemalloc2 libluajit-5.1-2 libhyperscan5 libwrap0 openssl
  podman buildah runc conmon debootstrap)
# --- end of isolation proof packages ---
# Reference data: the test archives of CPython's tarfile (tests/images/test_tar_go.py
# reads them, and Go's, from where Debian installs them).
refdata=(libpython3.11-testsuite)
libs=()
for lib in "${isolation[@]}" "${refdata[@]}"; do
  dpkg -s "$lib" >/dev/null 2>&1 || libs+=("$lib")
done
if [ "$root" = true ] && [ "$((${#need[@]} + ${#libs[@]}))" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  say "apt-get install ${need[*]} ${libs[*]}"
  apt-get update -qq
  [ "${#need[@]}" -eq 0 ] || apt-get install -y -qq "${need[@]}" >/dev/null
  [ "${#libs[@]}" -eq 0 ] || apt-get install -y -qq --no-install-recommends "${libs[@]}" >/dev/null
elif [ "${#need[@]}" -gt 0 ]; then
  # Not root: nothing is installed system-wide; the tests using these skip and say why.
  cannot "not root, not installing ${need[*]} (apt-get install ${need[*]}): the tests using them skip"
elif [ "${#libs[@]}" -gt 0 ]; then
  say "not root: not installing ${libs[*]} (the live isolation proof, which needs root anyway, and the tar reference archives)"
fi

# 3. The venv: patchkit editable, with the test extras.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

# 4. The poste.io model releases (Debian + npm; cached in bench/.cache/models; ~1 min cold).
# tests/poste/test_poste_patches.py needs them (and fails under CI=true without them).
if ! python3 bench/model/build.py; then
  cannot "bench/model/build.py failed: the tests on the model releases skip"
fi

# 5. Haraka 3.1.x and its test fixtures from npm (package-lock.json), for the plugin tests
# and tests/poste/test_startup.py, which loads Haraka's own config reader.
if command -v npm >/dev/null 2>&1; then
  (cd tests/poste/haraka && npm ci --no-audit --no-fund --ignore-scripts >/dev/null) ||
    cannot "npm ci in tests/poste/haraka failed: the Haraka tests skip"
else
  cannot "no npm (apt-get install npm): the Haraka tests skip"
fi

# 6. A loopback-only registry for the registry tests (sets PATCHKIT_TEST_REGISTRY).
if command -v docker-registry >/dev/null 2>&1; then
  # shellcheck source=.ci/registry.sh disable=SC1091
  source .ci/registry.sh || cannot "the loopback registry did not start: the registry tests skip"
  trap 'patchkit_registry_stop || true' EXIT
else
  cannot "no docker-registry (apt-get install docker-registry): the registry tests skip"
fi

# 7. The tests.
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
exit "$rc"
