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
# Outputs (to $GITHUB_OUTPUT when set): matrix (plan), result (part), report-dir, failed.
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

case "$mode" in
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
    echo "patchkit action: unknown mode '$mode' (all, plan, part, merge, watch)" >&2
    exit 2
    ;;
esac
