"""The live proof's images: the unpatched model image and the patched one (buildah)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import BUILDAH, CACHE, HERE, IMAGE, MODELS, PODMAN, REPO, SUITES, ProofError, sh

# -- build ----------------------------------------------------------------------------


PROJECT = [REPO]  # the patchkit project whose series is built (run.py --project)


def patchkit_cli() -> list[str]:
    exe = REPO / ".venv" / "bin" / "patchkit"
    return [
        str(exe) if exe.exists() else "patchkit",
        "--project",
        str(PROJECT[0]),
        "--store",
        str(CACHE / "store.git"),
    ]


def patchkit_context(model: str, out: Path, log: Callable[[str], None]) -> None:
    """`patchkit import` + `patchkit build` (retried once: the CLI may be mid-refactor)."""
    err = ""
    for attempt in (1, 2):
        # --replace: the proof's own store follows the model as bench/model/build.py last made it.
        imp = sh([*patchkit_cli(), "-q", "import", "--replace", model], check=False)
        bld = None
        if imp.returncode == 0:
            if out.exists():
                shutil.rmtree(out)
            bld = sh([*patchkit_cli(), "build", model, "--out", str(out)], check=False)
            if bld.returncode == 0:
                return
        failed = imp if bld is None else bld
        err = (
            " ".join(ln for ln in failed.stderr.splitlines() if "error" in ln)[:600]
            or failed.stderr.strip()[-300:]
        )
        if attempt == 1:
            log(f"patchkit failed ({err}); retrying in 30 s")
            time.sleep(30)
    raise ProofError(f"patchkit build {model} failed: {err}")


# What the proof adds that is not the series: model-only steps, all in the model image that
# both the unpatched and the patched image start from (the patched one adds only
# `patchkit build`'s context). Listed in the JSON as build.model_only_steps.
MODEL_ONLY_STEPS = (
    "runtime.tar: the Debian runtime the model release lacks (libc, node, users, maintainer "
    "scripts run; never a file the model has: bench/isolation/runtime.py)",
    "model-init.sh as the entrypoint (NOT poste.io's init): runs /etc/cont-init.d/*, makes a "
    "self-signed certificate, renders nginx's site from its https template with "
    "__HTTP_PORT__=80 and __HTTPS_PORT__=443 (as poste.io's init does), makes missing run "
    "directories, starts redis, rspamd, dovecot, nginx and both Haraka instances",
    "test-only settings applied by model-init from the container's environment: "
    "MODEL_QUEUE_TARGET (inbound mail to the proof's sink), MODEL_RSPAMD_CHECK_PRIVATE=1 "
    "(haraka-plugin-rspamd scans TEST-NET clients) and MODEL_ADMIN_SESSION (the session the "
    "model's stand-in for the admin app's auth endpoint accepts); dovecot logs to stderr",
    "the patched image: patchkit build's Dockerfile with its FROM replaced by the model image",
)


def build_images(
    model: str,
    work: Path,
    log: Callable[[str], None],
    keep: bool,
    image: str | None = None,
    push: str | None = None,
) -> dict[str, Any]:
    """The unpatched and patched images. ``image`` (REF@DIGEST): the patched one is pulled,
    not built; ``push`` (REPO): built, pushed by digest, and pulled back (byref.py)."""
    import byref
    import runtime

    started = time.monotonic()
    layout_real = MODELS / model
    # buildah's oci: transport rejects paths with a dot-led component (bench/.cache): link.
    # (It names the source after its path, so the path must be a valid image reference.)
    layout = work / "models" / model
    layout.parent.mkdir(parents=True)
    layout.symlink_to(layout_real)
    tar, _ = runtime.runtime_tar(SUITES[model], layout_real, CACHE, log)
    images = {v: IMAGE.format(model=model, variant=v) for v in ("unpatched", "patched")}
    info: dict[str, Any] = {"images": {}}
    existing = sh(
        [*PODMAN, "images", "--format", "{{.Repository}}:{{.Tag}}"], check=False
    ).stdout.split()
    base_ctx = work / "ctx-model"
    base_ctx.mkdir()
    try:
        os.link(tar, base_ctx / "runtime.tar")
    except OSError:
        shutil.copy2(tar, base_ctx / "runtime.tar")
    shutil.copy2(HERE / "model-init.sh", base_ctx / "model-init.sh")
    (base_ctx / "Containerfile").write_text(
        "# bench/isolation: the model release made runnable. NOT poste.io's image: the model's\n"
        "# own layers, the Debian runtime it lacks (runtime.py; no file of the model is in it)\n"
        "# and the MODEL entrypoint model-init.sh (poste.io's image has its own init).\n"
        f"FROM oci:{layout}:{model}\n"
        "ADD runtime.tar /\n"
        "COPY model-init.sh /usr/local/sbin/patchkit-model-init\n"
        'LABEL org.opencontainers.image.description="patchkit model release made runnable by '
        'bench/isolation (model entrypoint, not poste.io init)"\n'
        'ENTRYPOINT ["/bin/sh", "/usr/local/sbin/patchkit-model-init"]\n'
    )
    ctx = work / "ctx-patched"
    if image is not None:  # the patched image is what a registry holds: no context built here
        t = time.monotonic()
        info["images"]["unpatched"] = _build_one(base_ctx, "Containerfile", images, "unpatched",
                                                 keep, existing, log)  # fmt: skip
        info["images"]["patched"] = byref.pull_by_digest(sh, PODMAN, image, images["patched"], log)
        info["images"]["patched"]["seconds"] = round(time.monotonic() - t, 1)
        info["model_only_steps"] = list(MODEL_ONLY_STEPS)
        info["proof_patches"] = []
        info["left_out"] = ["(not known here: the patched image was pulled, not built)"]
        info["seconds"] = round(time.monotonic() - started, 1)
        return info
    patchkit_context(model, ctx, log)
    dockerfile = ctx / "Dockerfile"
    text = dockerfile.read_text()
    from_line = next(ln for ln in text.splitlines() if ln.startswith("FROM "))
    text = text.replace(
        from_line,
        "# bench/isolation (model-only step): FROM the model image (the model release made\n"
        f"# runnable), instead of patchkit build's {from_line!r}\n"
        f"FROM {images['unpatched']}",
        1,
    )
    dockerfile.write_text(text)
    built = json.loads((ctx / "patchkit-build.json").read_text())
    info["patchkit_from"] = from_line
    info["left_out"] = built.get("left_out", [])
    info["model_only_steps"] = list(MODEL_ONLY_STEPS)
    info["proof_patches"] = []  # none: the patched image is the series as it is
    log(f"patchkit build left out (poste.io-only targets): {', '.join(info['left_out']) or 'none'}")
    for variant, context in (("unpatched", base_ctx), ("patched", ctx)):
        file = "Containerfile" if variant == "unpatched" else "Dockerfile"
        info["images"][variant] = _build_one(context, file, images, variant, keep, existing, log)
    if push is not None:  # what the proof runs is what the registry holds, pulled by digest
        t = time.monotonic()
        ref = byref.push_by_digest(sh, BUILDAH, images["patched"], push, work, log)
        sh([*PODMAN, "rmi", "-f", images["patched"]], check=False)
        built = info["images"]["patched"]
        info["images"]["patched"] = byref.pull_by_digest(sh, PODMAN, ref, images["patched"], log)
        info["images"]["patched"]["built_seconds"] = built["seconds"]
        info["images"]["patched"]["seconds"] = round(time.monotonic() - t, 1)
    info["seconds"] = round(time.monotonic() - started, 1)
    return info


def _build_one(
    context: Path,
    file: str,
    images: dict[str, str],
    variant: str,
    keep: bool,
    existing: list[str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    name = images[variant]
    t = time.monotonic()
    if keep and name in existing and variant == "unpatched":
        log(f"build {variant}: reusing {name} (--keep)")
    else:
        sh(
            [
                *BUILDAH,
                "bud",
                "--isolation",
                "chroot",
                "-q",
                "-f",
                str(context / file),
                "-t",
                name,
                str(context),
            ],
            timeout=1200,
        )
    digest = sh([*PODMAN, "image", "inspect", "--format", "{{.Digest}}", name]).stdout.strip()
    image_id = sh([*PODMAN, "image", "inspect", "--format", "{{.Id}}", name]).stdout.strip()
    size = sh([*PODMAN, "image", "inspect", "--format", "{{.Size}}", name]).stdout.strip()
    log(
        f"build {variant}: {name} {digest} ({int(size or 0) // 1_000_000} MB, {time.monotonic() - t:.0f}s)"
    )
    return {
        "name": name,
        "digest": digest,
        "id": f"sha256:{image_id}",
        "bytes": int(size or 0),
        "seconds": round(time.monotonic() - t, 1),
    }
