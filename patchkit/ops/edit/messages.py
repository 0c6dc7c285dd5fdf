"""Commit messages of the edit worktree and patch names (pure).

A patch's commit carries its subject (a ``git format-patch`` ``Subject:``, else the first
line of ``Description:``, else the first header line, else its name), the rest of its
description as the body, and the trailer ``Patchkit-Patch: NAME``.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from patchkit.kinds.dep3 import dep3_header

__all__ = [
    "TRAILER",
    "commit_message",
    "new_patch_header",
    "signature_tail",
    "slug_name",
    "split_message",
    "subject_body",
    "trailers",
]

TRAILER = "Patchkit-Patch"
_TRAILER = re.compile(rf"^{TRAILER}:[ \t]*(\S.*?)\s*$", re.M)
_SUBJECT_TAG = re.compile(r"^\[[^\]]*\]\s*")
_SIGNATURE = re.compile(rb"\n(-- \n[^\n]*\n\s*)\Z")


def subject_body(header: str, name: str) -> tuple[str, str]:
    """(subject, body) of a patch header: format-patch, DEP-3 or free text."""
    lines = header.splitlines()
    for i, line in enumerate(lines):
        if line.lower().startswith("subject:"):
            parts = [line[len("subject:") :].strip()]
            j = i + 1
            while j < len(lines) and lines[j][:1] in (" ", "\t") and lines[j].strip():
                parts.append(lines[j].strip())
                j += 1
            subject = _SUBJECT_TAG.sub("", " ".join(parts)).strip()
            while j < len(lines) and lines[j].strip():  # the other mail headers
                j += 1
            body: list[str] = []
            for rest in lines[j + 1 :]:
                if rest.rstrip() == "---":
                    break
                body.append(rest)
            return subject or name, "\n".join(body).strip("\n")
    for i, line in enumerate(lines):
        if line.lower().startswith("description:"):
            subject = line[len("description:") :].strip()
            body = []
            for cont in lines[i + 1 :]:
                if cont[:1] not in (" ", "\t") or not cont.strip():
                    break
                text = cont.strip()
                body.append("" if text == "." else text)
            return subject or name, "\n".join(body).strip("\n")
    for line in lines:
        if line.strip():
            return line.strip(), ""
    return name, ""


def commit_message(name: str, subject: str, body: str = "") -> str:
    middle = f"{body.strip()}\n\n" if body.strip() else ""
    return f"{subject}\n\n{middle}{TRAILER}: {name}\n"


def trailers(message: str) -> list[str]:
    """The patch names a commit message's trailers give, in order."""
    return [m.group(1) for m in _TRAILER.finditer(message)]


def split_message(message: str) -> tuple[str, str]:
    """(subject, body) of a commit message, trailers naming patches left out."""
    text = _TRAILER.sub("", message).strip("\n")
    subject, _, body = text.partition("\n")
    return subject.strip(), body.strip("\n")


def new_patch_header(subject: str, body: str) -> str:
    """The DEP-3 header of a patch made from a commit: its message as the Description."""
    text = subject + ("\n" + body if body.strip() else "")
    return dep3_header({"description": text})


def slug_name(subject: str, taken: Collection[str]) -> str:
    """``Fix the webmail host`` -> ``fix-the-webmail-host.patch`` (``-2``, ``-3`` ... when
    ``taken`` has it)."""
    stem = re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:60].strip("-") or "patch"
    name, n = f"{stem}.patch", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.patch"
    return name


def signature_tail(data: bytes) -> bytes:
    """The mail signature ``git format-patch`` ends a patch with (``-- \\n2.39.5\\n``)."""
    m = _SIGNATURE.search(data)
    return m.group(1) if m else b""
