"""Benchmark: `patchkit watch` against the script a user would write with skopeo.

A real Debian docker-registry on loopback holds 300 tags of one repository (each its own
manifest over one shared layer): 20 are tracked releases (2.5.5 ... 2.5.24, their tag
digests recorded), 2 are new (2.5.25, 2.5.26), the other 278 are older releases and
other tags (2.0.0 ... 2.4.x, `latest`, `-rc` tags) that the rules leave out.

Both sides talk to the registry through the tests' token proxy (tests/helpers/
registry_server.py): it demands an anonymous Bearer token as Docker Hub does and pages
tags/list by 100 with `Link` headers (Debian's docker-registry 2.8 has token auth only
with a JWT token server, and does not page tags/list at all), so each side pays for tokens
and pages as it would against a real registry.

- patchkit: `patchkit --project P watch --json` (one token; the listing, then 22 HEADs on
  a pool of 8 threads), installed as `pip install .` installs it;
- by hand: `skopeo list-tags` then, per tracked tag, `skopeo inspect --raw | sha256sum`
  (what it takes to see a re-pushed tag), in bash.

Interleaved, median of --rounds (>= 3), ratio in the same run, once per --delay: on loopback
a request costs next to nothing, so the proxy can hold each answer for a given time (a
stand-in for a remote registry's round trip; it adds no TCP/TLS set-up cost, which would
weigh on the side opening more connections: 21 skopeo processes against one pool).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.authoring.run import installed_python  # noqa: E402
from tests.helpers import registry_server as rs  # noqa: E402

REPO = "analogic/poste.io"
TRACKED = [f"2.5.{n}" for n in range(5, 25)]  # 20
NEW = ["2.5.25", "2.5.26"]
RULES = """
[upstream.watch]
tags = '^2\\.\\d+\\.\\d+$'
versions = ">=2.5.5"
status = "testing"
"""


def other_tags() -> list[str]:
    """278 tags the rules leave out: older releases, `latest`, release candidates."""
    tags = [f"2.{minor}.{patch}" for minor in range(5) for patch in range(50)]  # 250
    tags += ["latest", "stable", "2.5"] + [f"2.5.{n}-rc1" for n in range(25)]  # 28
    return tags


def push_all(address: str) -> dict[str, str]:
    base_layer, base_diff = rs.layer_tar_gz({"etc/os-release": b"ID=bench\n"})
    rs.push_blob(address, REPO, base_layer)
    digests = {}
    for tag in [*other_tags(), *TRACKED, *NEW]:
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [base_diff]},
                "config": {"Labels": {"version": tag}},
            },
            sort_keys=True,
        ).encode()
        rs.push_blob(address, REPO, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": rs.OCI_MANIFEST,
            "config": {
                "mediaType": rs.OCI_CONFIG,
                "digest": rs.sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": rs.OCI_LAYER_GZ,
                    "digest": rs.sha256(base_layer),
                    "size": len(base_layer),
                }
            ],
        }
        data = json.dumps(manifest).encode()
        digests[tag] = rs.push_manifest(address, REPO, tag, data, rs.OCI_MANIFEST)
    return digests


def write_project(root: Path, address: str, digests: dict[str, str]) -> None:
    (root / "patches").mkdir(parents=True, exist_ok=True)
    (root / "patches" / "series").write_text("")
    text = f'schema = 1\nbase = "2.5.24"\n\n[upstream]\nname = "poste.io"\nimage = "{address}/{REPO}"\n'
    text += RULES
    for tag in reversed(TRACKED):
        text += f'\n[[version]]\nversion = "{tag}"\nstatus = "supported"\ntag-digest = "{digests[tag]}"\n'
    (root / "upstream-versions.toml").write_text(text)


SCRIPT = """\
#!/bin/bash
# What a maintainer would write: list the tags, then hash each tracked tag's manifest.
set -euo pipefail
image=docker://$1
shift
skopeo list-tags --tls-verify=false "$image" | jq -r '.Tags[]' > "$TMPDIR/tags"
for tag in "$@"; do
    echo "$tag $(skopeo inspect --raw --tls-verify=false "$image:$tag" | sha256sum | cut -d' ' -f1)"
done
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode()[-800:]}")
    return elapsed, proc.stdout


def measure(
    pk: list[str], hand: list[str], env: dict[str, str], rounds: int, delay_ms: int, tokens: int
) -> None:
    results: dict[str, list[float]] = {"patchkit": [], "skopeo script": []}
    for r in range(rounds):
        order = [("patchkit", pk), ("skopeo script", hand)]
        if r % 2:
            order.reverse()
        for name, cmd in order:
            results[name].append(timed(cmd, env)[0])
        print(
            f"{delay_ms} ms, round {r + 1}: "
            + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in results.items()),
            file=sys.stderr,
        )
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"300 tags, 20 tracked, 2 new, token auth, pages of 100, {delay_ms} ms a request: "
        f"patchkit watch {med['patchkit']:.3f} s ({tokens} token), "
        f"skopeo script {med['skopeo script']:.3f} s (21 processes, a token each); "
        f"ratio {med['skopeo script'] / med['patchkit']:.1f}x (medians of {rounds}, interleaved)",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--delay",
        type=lambda text: [int(ms) for ms in text.split(",")],
        default=[0, 50],
        help="milliseconds the proxy waits before answering each request, a stand-in for the "
        "round trip to a remote registry (comma-separated: one measurement each; default 0,50)",
    )
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    for tool in ("docker-registry", "skopeo", "jq"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    work = Path(tempfile.mkdtemp(prefix="patchkit-bench-watch-"))
    registry = rs.start_registry(work / "registry")
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: None if args.keep else shutil.rmtree(work, ignore_errors=True))
        stack.callback(registry.stop)
        digests = push_all(registry.address)
        proxies = rs.start_proxy(registry.address)
        proxy = next(proxies)
        stack.callback(proxies.close)  # before the registry stops; a daemon thread serves it
        proxy.state.page_size = 100
        project = work / "project"
        write_project(project, proxy.address, digests)
        script = work / "by-hand.sh"
        script.write_text(SCRIPT)
        home = work / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHKIT_")}
        env.update(HOME=str(home), XDG_RUNTIME_DIR=str(home), XDG_CONFIG_HOME=str(home))
        env["TMPDIR"] = str(work)
        python = installed_python(work)
        pk = [python, "-m", "patchkit", "--project", str(project), "watch", "--json"]
        hand = ["bash", str(script), f"{proxy.address}/{REPO}", *TRACKED]

        # one run each to check both see the same thing
        _, out = timed(pk, env)
        doc = json.loads(out)
        assert [n["version"] for n in doc["new"]] == NEW, doc
        assert doc["repushed"] == [] and doc["vanished"] == [], doc
        _, out = timed(hand, env)
        seen = dict(line.split() for line in out.decode().splitlines())
        if {t: "sha256:" + d for t, d in seen.items()} != {t: digests[t] for t in TRACKED}:
            raise SystemExit(f"the script saw other digests: {out.decode()[:600]}")
        assert len(proxy.state.token_requests) > 20  # skopeo: a token per process
        tokens_before = len(proxy.state.token_requests)
        _, _ = timed(pk, env)
        pk_tokens = len(proxy.state.token_requests) - tokens_before

        for delay_ms in args.delay:
            proxy.state.delay = delay_ms / 1000
            measure(pk, hand, env, args.rounds, delay_ms, pk_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
