"""Which packages a release holds, and which changed between two (pure: bytes in, values out).

Two package managers an image's root filesystem shows by its files: Debian's
``var/lib/dpkg/status`` (one stanza a package: ``Package``, ``Status``, ``Version``,
``Architecture``) and npm's ``package.json`` of each installed package (under
``node_modules/``) and of each application that has a ``node_modules/`` beside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DPKG_STATUS",
    "PackageChange",
    "npm_manifests",
    "package_changes",
    "parse_dpkg_status",
    "parse_package_json",
]

DPKG_STATUS = "var/lib/dpkg/status"
# dpkg's states in which no package files are on disk.
_NOT_ON_DISK = frozenset({"not-installed", "config-files"})
_FIELD = re.compile(r"^([!-9;-~]+):[ \t]*(.*)$")  # dpkg field names: printable, no colon


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageChange:
    """One package whose version differs between two releases (``None``: absent there)."""

    manager: str  # "debian" | "npm"
    name: str
    old: str | None
    new: str | None

    @property
    def change(self) -> str:
        return "added" if self.old is None else "removed" if self.new is None else "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "manager": self.manager,
            "name": self.name,
            "old": self.old,
            "new": self.new,
            "change": self.change,
        }


def _stanzas(text: str) -> Iterable[dict[str, str]]:
    fields: dict[str, str] = {}
    last = ""
    for line in text.split("\n"):
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
            continue
        if line[0] in " \t":  # a continuation of the last field
            if last:
                fields[last] += "\n" + line.strip()
            continue
        m = _FIELD.match(line)
        if m is not None:
            last = m.group(1).lower()
            fields[last] = m.group(2).strip()
    if fields:
        yield fields


def parse_dpkg_status(text: str) -> dict[str, str]:
    """Installed package -> version, from the text of ``var/lib/dpkg/status``.

    A package installed for more than one architecture is named ``name:arch`` for each.
    Stanzas without a name or a version, and packages whose files are not on disk
    (``not-installed``, ``config-files``), are left out.
    """
    found: list[tuple[str, str, str]] = []
    for fields in _stanzas(text):
        name, version = fields.get("package", ""), fields.get("version", "")
        state = fields.get("status", "").split()
        if not name or not version or (state and state[-1] in _NOT_ON_DISK):
            continue
        found.append((name, fields.get("architecture", ""), version))
    count: dict[str, int] = {}
    for name, _, _ in found:
        count[name] = count.get(name, 0) + 1
    return {
        (f"{name}:{arch}" if count[name] > 1 and arch else name): version
        for name, arch, version in found
    }


def parse_package_json(data: bytes) -> tuple[str, str] | None:
    """(name, version) of a ``package.json``; None if it is not JSON or lacks either."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    name, version = doc.get("name"), doc.get("version")
    if isinstance(name, str) and name and isinstance(version, str) and version:
        return name, version
    return None


def npm_manifests(paths: Iterable[str]) -> list[str]:
    """The ``package.json`` files among ``paths`` that name an installed package or an
    application: directly in ``node_modules/NAME/`` or ``node_modules/@SCOPE/NAME/``, or
    beside a ``node_modules/`` directory. (A package's test fixtures and examples are not.)"""
    paths = list(paths)
    apps = {p[: -len("node_modules")] for p in _dirs_named(paths, "node_modules")}
    out = []
    for path in paths:
        if path != "package.json" and not path.endswith("/package.json"):
            continue
        parts = path.split("/")
        installed = (len(parts) >= 3 and parts[-3] == "node_modules") or (
            len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")
        )
        if installed or path[: -len("package.json")] in apps:
            out.append(path)
    return sorted(out)


def _dirs_named(paths: Iterable[str], name: str) -> set[str]:
    """Every directory path ending in ``/name`` (or ``name`` at the root) that holds a file."""
    out = set()
    marker = f"{name}/"
    for path in paths:
        start = 0
        while (i := path.find(marker, start)) != -1:
            if i == 0 or path[i - 1] == "/":
                out.add(path[: i + len(name)])
            start = i + 1
    return out


def package_changes(
    manager: str, old: Mapping[str, Iterable[str]], new: Mapping[str, Iterable[str]]
) -> list[PackageChange]:
    """Every package whose versions differ between ``old`` and ``new`` (name -> versions; a
    name installed in several versions shows them joined by ", "), sorted by name."""
    out = []
    for name in sorted(set(old) | set(new)):
        a = ", ".join(sorted(set(old[name]))) if name in old else None
        b = ", ".join(sorted(set(new[name]))) if name in new else None
        if a != b:
            out.append(PackageChange(manager=manager, name=name, old=a, new=b))
    return out
