#!/usr/bin/env bash
# What action.yml runs (docs/github-action.md): one call per step, the mode says which.
# Runs anywhere with bash, python3 and patchkit on PATH, so it is tested locally
# (tests/integrations/test_github_action.py) with GITHUB_OUTPUT / GITHUB_STEP_SUMMARY as files.
#
#   PATCHKIT_MODE        all (import, matrix, report: one job) | plan (strategy.matrix for a
#                        fan-out) | part (one fan-out job: import, matrix JSON) | merge (report
#                        on the parts' JSON in $PATCHKIT_OUT/parts) | watch (action/upstream.py:
#                        new upstream releases become pull requests or issues; its own settings
#                        and outputs are in its docstring)
#   PATCHKIT_PROJECT     the project directory (default .)
#   PATCHKIT_VERSIONS    releases, separated by spaces, commas or newlines (default: every
#                        tracked release whose status is in PATCHKIT_STATUSES)
#   PATCHKIT_STATUSES    supported,testing,eol,model (default: any)
#   PATCHKIT_FORMAT      report files besides matrix.json: junit,markdown,html (default junit)
#   PATCHKIT_FAIL_ON     statuses that fail the run (default conflict,missing-target; "" never)
#   PATCHKIT_GROUP_SIZE  releases per fan-out job (plan; default 1)
#   PATCHKIT_NAME        this fan-out job's name (part: the plan's matrix.name)
#   PATCHKIT_OUT         where files go (default ./patchkit-out): report/, result-NAME.json
# publish (docs/build.md, "Publishing"): every release (PATCHKIT_VERSIONS, else the tracked ones
# whose status is in PATCHKIT_STATUSES, default supported,testing) whose series is clean
# (`check` exit 0) and whose patched audit passes (`audit` exit 0) is built, a context a
# platform, assembled into one OCI layout (`patchkit assemble`) and pushed by digest; only when
# every push succeeded do the tags move: <image>:<version>, and PATCHKIT_MOVING_TAG for the newest
# `supported` release published. A failed build or push exits non-zero with no tag moved.
#   PATCHKIT_IMAGE       where to publish: REGISTRY/NAME (required)
#   PATCHKIT_BUILDER     buildx (GitHub's runners: SBOM and provenance attestations) | buildah
#                        (no daemon: this machine and the tests); default buildx when
#                        `docker buildx` works, else buildah
#   PATCHKIT_MOVING_TAG  the tag of the newest supported release (default latest; "" none)
#   PATCHKIT_REGISTRY_USERNAME / PATCHKIT_REGISTRY_PASSWORD  credentials for the push
#                        (skopeo login into a private auth file under PATCHKIT_OUT)
#   PATCHKIT_TLS_VERIFY  false only for a plain-HTTP registry (a loopback test registry)
#   PATCHKIT_BUILDAH_ROOT  buildah's storage for this run (default buildah's own)
# Outputs (to $GITHUB_OUTPUT when set): matrix (plan), result (part), report-dir, failed;
# publish: published (JSON: version, digest, tags), skipped (JSON: version, reason), digests
# (IMAGE@DIGEST, space-separated: what a signing step signs).
set -euo pipefail

mode=${PATCHKIT_MODE:-all}
project=${PATCHKIT_PROJECT:-.}
out=${PATCHKIT_OUT:-patchkit-out}
fail_on=${PATCHKIT_FAIL_ON-conflict,missing-target}
formats=${PATCHKIT_FORMAT-junit}
pk=(patchkit --project "$project")

output() { # name=value to the step's outputs (and stdout, for a person running it)
  echo "$1"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "$1" >>"$GITHUB_OUTPUT"; fi
}

labels() { # the releases this run covers, one line
  if [ -n "${PATCHKIT_VERSIONS:-}" ]; then
    echo "${PATCHKIT_VERSIONS//[,$'\n']/ }"
    return
  fi
  "${pk[@]}" versions --json | PATCHKIT_STATUSES=${PATCHKIT_STATUSES:-} python3 -c '
import json, os, sys
wanted = {s.strip() for s in os.environ["PATCHKIT_STATUSES"].split(",") if s.strip()}
doc = json.load(sys.stdin)
print(" ".join(v["version"] for v in doc["versions"] if not wanted or v["status"] in wanted))'
}

import_all() {
  for v in "$@"; do
    "${pk[@]}" -q import "$v"
  done
}

matrix_json() { # matrix of the given releases as JSON on stdout; exit 1 (attention) is not an error here
  "${pk[@]}" -q matrix "$@" --format json --fail-on ""
}

report() { # Markdown summary, report files and the verdict from matrix JSON files
  local dir="$out/report" fmt rc
  mkdir -p "$dir"
  local merge=("${pk[@]}" -q matrix --merge "$@" --fail-on "")
  "${merge[@]}" --format json >"$dir/matrix.json"
  "${merge[@]}" --format markdown >"$dir/matrix.md"
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    { echo "## patchkit matrix"; echo; cat "$dir/matrix.md"; } >>"$GITHUB_STEP_SUMMARY"
  fi
  for fmt in ${formats//,/ }; do
    case "$fmt" in
      json | markdown) ;; # always written
      junit) "${merge[@]}" --format junit >"$dir/matrix-junit.xml" ;;
      html) "${merge[@]}" --format html >"$dir/matrix.html" ;;
      *) echo "patchkit action: unknown format '$fmt' (json, junit, markdown, html)" >&2; exit 2 ;;
    esac
  done
  output "report-dir=$dir"
  rc=0
  "${pk[@]}" -q matrix --merge "$@" --fail-on "$fail_on" >/dev/null || rc=$?
  case "$rc" in
    0) output "failed=false" ;;
    1) output "failed=true"
       echo "patchkit action: a cell has a status in --fail-on ($fail_on): see the summary" >&2 ;;
    *) exit "$rc" ;;
  esac
}

publish_one() { # $1 = version: check, audit, build, assemble, push by digest; prints the digest
  local v=$1 dir="$out/publish/$1" rc ctxs ctx plat pdir srcs=() label_args=() status
  status=$("${pk[@]}" versions --json | python3 -c '
import json, sys
print(next((r["status"] for r in json.load(sys.stdin)["versions"] if r["version"] == sys.argv[1]), ""))' "$v")
  if [ "$status" = model ]; then
    echo "skip:a model release (assembled here from open-source parts) is never published"
    return 0
  fi
  rc=0
  "${pk[@]}" -q check "$v" >/dev/null || rc=$?
  case "$rc" in
    0) ;;
    1) echo "skip:series does not apply cleanly (patchkit check $v)"; return 0 ;;
    *) return "$rc" ;;
  esac
  "${pk[@]}" -q audit "$v" >/dev/null || rc=$?
  case "$rc" in
    0) ;;
    1) echo "skip:patched audit fails (patchkit audit $v)"; return 0 ;;
    *) return "$rc" ;;
  esac
  rm -rf "$dir" && mkdir -p "$dir/layouts"
  if [ -n "${GITHUB_SHA:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ]; then
    label_args=(--source "${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY" --revision "$GITHUB_SHA")
  fi
  "${pk[@]}" -q build "$v" --out "$dir/context" "${label_args[@]}" --json >"$dir/build.json"
  # one "DIR PLATFORM" line a context (PLATFORM "-": the builder's default)
  ctxs=$(python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
for c in doc.get("platforms") or [doc]:
    print(c["out"], c.get("platform") or "-")' "$dir/build.json")
  while read -r ctx plat; do
    pdir=${plat//\//-}
    [ "$plat" = - ] && pdir=image
    build_image "$ctx" "$plat" "$dir/layouts/$pdir" "$v"
    srcs+=("oci:$dir/layouts/$pdir:$v")
  done <<<"$ctxs"
  "${pk[@]}" -q assemble "$dir/oci" "${srcs[@]}" --tag "$v" --json >"$dir/assembled.json"
  digest=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["digest"])' "$dir/assembled.json")
  skopeo copy -q --all --preserve-digests "${skopeo_dest[@]}" "oci:$dir/oci:$v" "docker://$image@$digest" >&2
  echo "pushed:$digest"
}

build_image() { # $1 context, $2 platform or -, $3 OCI layout to write, $4 version
  local ctx=$1 plat=$2 layout=$3 v=$4 platform_args=() name
  [ "$plat" = - ] || platform_args=(--platform "$plat")
  case "$builder" in
    buildx)
      # SBOM and provenance attestations ride in the OCI output: `assemble` keeps them.
      docker buildx build "${platform_args[@]}" --sbom=true --provenance=mode=max \
        --output "type=oci,dest=$layout,tar=false" "$ctx" >&2
      # buildx names no ref in index.json: give the layout's one entry the version
      python3 -c '
import json, sys
path, tag = sys.argv[1] + "/index.json", sys.argv[2]
doc = json.load(open(path))
for d in doc["manifests"]:
    d.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = tag
json.dump(doc, open(path, "w"))' "$layout" "$v"
      ;;
    buildah)
      name="localhost/patchkit-publish/$v:image"
      [ "$plat" = - ] || name="localhost/patchkit-publish/$v:${plat//\//-}"
      # --timestamp: the image's created time and file times fixed (SOURCE_DATE_EPOCH, else
      # 0): the same context gives the same image digest.
      "${buildah[@]}" bud --isolation chroot --tls-verify="$tls" "${platform_args[@]}" -q \
        --timestamp "${SOURCE_DATE_EPOCH:-0}" -t "$name" "$ctx" >/dev/null
      "${buildah[@]}" push -q --format oci "$name" "oci:$layout:$v" >&2
      "${buildah[@]}" rmi -f "$name" >/dev/null
      ;;
  esac
}

publish() {
  shopt -s inherit_errexit # a failed step inside $(publish_one ...) fails the run
  image=${PATCHKIT_IMAGE:?PATCHKIT_IMAGE: publish needs the image to push to (REGISTRY/NAME)}
  tls=${PATCHKIT_TLS_VERIFY:-true}
  builder=${PATCHKIT_BUILDER:-}
  if [ -z "$builder" ]; then
    if docker buildx version >/dev/null 2>&1; then builder=buildx; else builder=buildah; fi
  fi
  case "$builder" in buildx | buildah) ;; *)
    echo "patchkit action: unknown builder '$builder' (buildx, buildah)" >&2; exit 2 ;;
  esac
  buildah=(buildah)
  if [ -n "${PATCHKIT_BUILDAH_ROOT:-}" ]; then
    buildah+=(--root "$PATCHKIT_BUILDAH_ROOT/storage" --runroot "$PATCHKIT_BUILDAH_ROOT/run" --storage-driver vfs)
  fi
  mkdir -p "$out/publish"
  local auth="$out/publish/auth.json" v result digest moving newest reason
  skopeo_dest=(--dest-tls-verify="$tls" --authfile "$auth")
  local skopeo_both=(--src-tls-verify="$tls" --dest-tls-verify="$tls" --authfile "$auth")
  [ -f "$auth" ] || echo '{}' >"$auth"
  if [ -n "${PATCHKIT_REGISTRY_USERNAME:-}" ]; then
    printf '%s' "${PATCHKIT_REGISTRY_PASSWORD:?PATCHKIT_REGISTRY_PASSWORD: a username needs its password}" |
      skopeo login -q --tls-verify="$tls" --authfile "$auth" -u "$PATCHKIT_REGISTRY_USERNAME" \
        --password-stdin "${image%%/*}" >&2
  fi
  echo "patchkit action: publishing to $image with $builder" >&2
  export PATCHKIT_STATUSES=${PATCHKIT_STATUSES:-supported,testing}
  read -r -a versions <<<"$(labels)"
  import_all "${versions[@]}"
  local pushed=() skipped=()
  # 1. every release built and pushed by digest; a failure stops here, before any tag moves
  for v in "${versions[@]}"; do
    result=$(publish_one "$v")
    case "$result" in
      pushed:*) digest=${result#pushed:}; pushed+=("$v=$digest")
        echo "patchkit action: $v pushed as $image@$digest" >&2 ;;
      skip:*) reason=${result#skip:}; skipped+=("$v=$reason")
        echo "patchkit action: $v not published: $reason" >&2 ;;
    esac
  done
  # 2. the tags move, each to a digest already in the registry
  moving=${PATCHKIT_MOVING_TAG-latest}
  newest=$(PUSHED="${pushed[*]}" python3 -c '
import json, os, subprocess, sys
from patchkit.core.versions import order_labels
pushed = [p.split("=")[0] for p in os.environ["PUSHED"].split()]
doc = json.loads(subprocess.run(sys.argv[1:] + ["versions", "--json"], capture_output=True, check=True).stdout)
supported = [v["version"] for v in doc["versions"] if v["status"] == "supported" and v["version"] in pushed]
print(order_labels(supported)[-1] if supported else "")' "${pk[@]}")
  local json_pushed="[" sep=""
  for result in "${pushed[@]}"; do
    v=${result%%=*} digest=${result#*=}
    local tags="\"$v\""
    skopeo copy -q --all --preserve-digests "${skopeo_both[@]}" "docker://$image@$digest" "docker://$image:$v" >&2
    if [ -n "$moving" ] && [ "$v" = "$newest" ]; then
      skopeo copy -q --all --preserve-digests "${skopeo_both[@]}" "docker://$image@$digest" "docker://$image:$moving" >&2
      tags="$tags, \"$moving\""
    fi
    json_pushed+="$sep{\"version\": \"$v\", \"digest\": \"$digest\", \"tags\": [$tags]}"
    sep=", "
  done
  json_pushed+="]"
  local json_skipped="[" digests=""
  sep=""
  for result in "${skipped[@]}"; do
    json_skipped+="$sep{\"version\": \"${result%%=*}\", \"reason\": \"${result#*=}\"}"
    sep=", "
  done
  json_skipped+="]"
  for result in "${pushed[@]}"; do digests+="${digests:+ }$image@${result#*=}"; done
  output "published=$json_pushed"
  output "skipped=$json_skipped"
  output "digests=$digests"
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    {
      echo "## patchkit publish: $image ($builder)"
      echo
      echo "| release | result |"
      echo "|---|---|"
      for result in "${pushed[@]}"; do echo "| ${result%%=*} | \`$image@${result#*=}\` |"; done
      for result in "${skipped[@]}"; do echo "| ${result%%=*} | not published: ${result#*=} |"; done
    } >>"$GITHUB_STEP_SUMMARY"
  fi
}

case "$mode" in
  publish)
    publish
    ;;
  plan)
    read -r -a versions <<<"$(labels)"
    output "matrix=$("${pk[@]}" -q matrix "${versions[@]}" --github-matrix --group-size "${PATCHKIT_GROUP_SIZE:-1}")"
    ;;
  part)
    name=${PATCHKIT_NAME:?PATCHKIT_NAME: the part needs a name (the plan matrix.name)}
    read -r -a versions <<<"$(labels)"
    import_all "${versions[@]}"
    mkdir -p "$out"
    matrix_json "${versions[@]}" >"$out/result-$name.json"
    output "result=$out/result-$name.json"
    ;;
  merge)
    shopt -s nullglob
    parts=("$out"/parts/*.json)
    if [ "${#parts[@]}" -eq 0 ]; then
      echo "patchkit action: no part results in $out/parts (did the part jobs run?)" >&2
      exit 3
    fi
    report "${parts[@]}"
    ;;
  watch)
    exec python3 "$(dirname "${BASH_SOURCE[0]}")/upstream.py"
    ;;
  all)
    read -r -a versions <<<"$(labels)"
    import_all "${versions[@]}"
    mkdir -p "$out"
    matrix_json "${versions[@]}" >"$out/result-all.json"
    report "$out/result-all.json"
    ;;
  *)
    echo "patchkit action: unknown mode '$mode' (all, plan, part, merge, publish, watch)" >&2
    exit 2
    ;;
esac
