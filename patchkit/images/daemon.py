"""``docker-daemon:NAME[:TAG]``: ask a local docker or podman to ``save`` the image, then read the tarball.

The CLI is ``$PATCHKIT_DOCKER`` when set, else the first of ``docker``, ``podman`` on ``PATH``
whose daemon answers ``version``. The tarball lives in a temporary directory that is removed
when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from patchkit.errors import SourceError
from patchkit.images.base import ImagePlan
from patchkit.images.source import Source

__all__ = ["find_daemon_cli", "open_daemon_image"]

_PROBE_TIMEOUT = 20.0
# what `docker save` accepts: a reference, never an option (no leading '-') and no whitespace
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _probe(cli: str) -> str | None:
    """None when the daemon behind ``cli`` answers; else why not (one line)."""
    try:
        proc = subprocess.run(
            [cli, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"no answer in {_PROBE_TIMEOUT:.0f} s"
    except OSError as e:
        return f"cannot run {cli}: {e.strerror or e}"
    if proc.returncode != 0 or not proc.stdout.strip():
        return _last_line(proc.stderr or proc.stdout)
    return None


def find_daemon_cli() -> tuple[str | None, list[str]]:
    """The CLI whose daemon answers (or None) and, per candidate tried, why it did not."""
    override = os.environ.get("PATCHKIT_DOCKER")
    candidates = [override] if override else ["docker", "podman"]
    reasons: list[str] = []
    for name in candidates:
        path = (
            shutil.which(name) if os.sep not in name else (name if os.path.exists(name) else None)
        )
        label = os.path.basename(name)
        if path is None:
            reasons.append(f"{label}: not found" + (" (PATCHKIT_DOCKER)" if override else ""))
            continue
        why = _probe(path)
        if why is None:
            return path, reasons
        reasons.append(f"{label}: {why}")
    return None, reasons


@contextlib.contextmanager
def open_daemon_image(name: str | Source, *, platform: str | None = None) -> Iterator[ImagePlan]:
    """``docker save NAME`` into a temp dir and read it as a docker-archive (NAME or a Source).

    ``ImagePlan.source`` is ``docker-daemon:NAME``; digest and layers are the archive's.

    >>> with open_daemon_image("redis:7") as plan:  # doctest: +SKIP
    ...     plan.layers
    """
    if not isinstance(name, str):  # a docker-daemon: Source prints as "docker-daemon:NAME"
        name = str(name).removeprefix("docker-daemon:")
    where = f"docker-daemon:{name}"
    if not _NAME_RE.fullmatch(name):
        raise SourceError(
            f"{where}: not an image name (letters, digits, '._/:@+-', not starting with '-')"
        )
    cli, reasons = find_daemon_cli()
    if cli is None:
        raise SourceError(f"{where}: no docker or podman daemon answers ({'; '.join(reasons)})")
    with tempfile.TemporaryDirectory(prefix="patchkit-daemon-") as tmp:
        tarball = Path(tmp) / "image.tar"
        try:
            proc = subprocess.run(
                [cli, "save", "-o", str(tarball), name],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
        except OSError as e:
            raise SourceError(f"{where}: cannot run {cli}: {e.strerror or e}") from e
        if proc.returncode != 0:
            raise SourceError(
                f"{where}: {os.path.basename(cli)} save failed: {_last_line(proc.stderr or proc.stdout)}"
            )
        if not tarball.is_file():
            raise SourceError(f"{where}: {os.path.basename(cli)} save wrote no tarball")
        # lazy: the archive reader is only needed here
        from patchkit.images.archive import open_docker_archive
        from patchkit.images.source import SourceKind

        archive = Source(kind=SourceKind.DOCKER_ARCHIVE, path=str(tarball))
        with contextlib.ExitStack() as stack:
            try:
                plan = stack.enter_context(open_docker_archive(archive, platform=platform))
            except SourceError as e:
                # name the image, not only the temp file
                raise type(e)(f"{where}: {e}") from e
            yield dataclasses.replace(plan, source=where)
