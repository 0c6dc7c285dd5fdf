"""`upstream-versions.toml`: which upstream releases exist, how to get them, which is base.

Pure: functions take the file's text and return values or new text. Rewrites go through
tomlkit so comments and layout survive.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patchkit.errors import ConfigError, UnknownVersionError

if TYPE_CHECKING:
    from packaging.version import Version

__all__ = [
    "SCHEMA_VERSION",
    "Release",
    "ReleaseStatus",
    "Upstream",
    "VersionsFile",
    "order_labels",
    "parse_label",
    "parse_versions",
    "set_base",
    "set_digest",
]

SCHEMA_VERSION = 1
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_PROFILE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class ReleaseStatus(enum.StrEnum):
    SUPPORTED = "supported"
    TESTING = "testing"
    EOL = "eol"
    MODEL = "model"  # assembled here from the image's open-source components

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    name: str
    image: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # The profile audit and build use (patchkit.profiles); None: chosen from `name`.
    profile: str | None = None
    line: int = 0  # line of the [upstream] header, for messages


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    version: str
    status: ReleaseStatus
    source: str | None = None
    digest: str | None = None
    platform: str | None = None
    strip: int = 0
    note: str = ""
    line: int = 0  # line of its [[version]] header, for messages

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": self.version, "status": self.status.value}
        for key in ("source", "digest", "platform"):
            value = getattr(self, key)
            if value:
                d[key] = value
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionsFile:
    path: str
    base: str
    upstream: Upstream
    releases: tuple[Release, ...]

    def release(self, version: str) -> Release:
        for rel in self.releases:
            if rel.version == version:
                return rel
        known = ", ".join(r.version for r in self.releases) or "none"
        raise UnknownVersionError(
            f"{self.path}: version '{version}' is not tracked (known: {known})"
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(r.version for r in self.releases)

    def ordered(self) -> tuple[Release, ...]:
        """Releases oldest first: PEP 440 labels by version, then other labels in file order."""
        by_label = {r.version: r for r in self.releases}
        return tuple(by_label[label] for label in order_labels(self.labels))

    def source_for(self, version: str) -> str:
        """The source string to import ``version`` from: its own, else `<image>:<version>`."""
        rel = self.release(version)
        if rel.source:
            return rel.source
        if not self.upstream.image:
            raise ConfigError(
                f"{self.path}:{rel.line}: version '{version}' has no 'source' and "
                "[upstream] has no 'image' to derive one from"
            )
        image = self.upstream.image
        return f"{image}:{version}" if "://" in image else f"docker://{image}:{version}"


def parse_label(label: str) -> Version | None:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(label)
    except InvalidVersion:
        return None


# A release number only ("2.5.24"): PEP 440 orders these by their numbers, trailing zeros
# left out (1.0 == 1.0.0), without loading packaging for it.
_NUMBERS = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def _numbers_key(label: str) -> tuple[int, ...]:
    numbers = [int(n) for n in label.split(".")]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def order_labels(labels: Sequence[str]) -> list[str]:
    """PEP 440 labels sorted by version, followed by the others in the given order."""
    if all(_NUMBERS.fullmatch(label) for label in labels):
        return sorted(labels, key=_numbers_key)  # stable: equal versions keep their order
    parsed = [(label, parse_label(label)) for label in labels]
    pep = sorted((p for p in parsed if p[1] is not None), key=lambda p: p[1])  # type: ignore[arg-type,return-value]
    other = [p for p in parsed if p[1] is None]
    return [label for label, _ in (*pep, *other)]


def _version_header_lines(text: str) -> list[int]:
    return [
        n
        for n, line in enumerate(text.splitlines(), 1)
        if re.match(r"^\s*\[\[\s*version\s*\]\]", line)
    ]


def _key_line(text: str, key: str, default: int = 1) -> int:
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return n
    return default


def _str_field(
    table: dict[str, Any], key: str, where: str, *, required: bool = False
) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}: missing field '{key}'")
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: field '{key}' must be a non-empty string")
    return value


def _globs(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: field '{key}' must be a list of strings")
    return tuple(value)


def parse_versions(text: str, *, path: str = "upstream-versions.toml") -> VersionsFile:
    """Parse and validate the file; every error names ``path``, the line and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        if m:
            at = f":{m.group(1)}"
        elif "end of document" in str(e):
            at = f":{max(1, len(text.splitlines()))}"
        else:
            at = ""
        reason = re.sub(r"\s*\((at line \d+, column \d+|at end of document)\)", "", str(e))
        raise ConfigError(f"{path}{at}: invalid TOML: {reason}") from e

    schema = data.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise ConfigError(
            f"{path}:{_key_line(text, 'schema')}: field 'schema' is {schema!r}; "
            f"this patchkit reads schema {SCHEMA_VERSION}"
        )

    up = data.get("upstream")
    if not isinstance(up, dict):
        raise ConfigError(f"{path}: missing table [upstream] (with at least 'name')")
    up_line = _section_line(text, "upstream")
    up_where = f"{path}:{up_line}: [upstream]"
    profile = _str_field(up, "profile", up_where)
    if profile is not None and not _PROFILE.match(profile):
        raise ConfigError(
            f"{up_where}: profile '{profile}' must be a lower-case name (letters, digits, '-', '_')"
        )
    upstream = Upstream(
        name=_str_field(up, "name", up_where, required=True) or "",
        image=_str_field(up, "image", up_where),
        include=_globs(up, "include", up_where),
        exclude=_globs(up, "exclude", up_where),
        profile=profile,
        line=up_line,
    )

    raw_versions = data.get("version", [])
    if not isinstance(raw_versions, list):
        raise ConfigError(f"{path}: 'version' must be an array of tables ([[version]])")
    header_lines = _version_header_lines(text)
    releases: list[Release] = []
    seen: set[str] = set()
    for i, table in enumerate(raw_versions):
        line = header_lines[i] if i < len(header_lines) else 0
        where = f"{path}:{line}: [[version]] #{i + 1}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        label = _str_field(table, "version", where, required=True) or ""
        if not _LABEL.match(label) or ".." in label or label.endswith(".lock"):
            raise ConfigError(
                f"{where}: version label '{label}' must be letters, digits, '.', '_', '+', '-' "
                "(it names a git ref)"
            )
        if label in seen:
            raise ConfigError(f"{where}: version '{label}' is listed twice")
        seen.add(label)
        status_text = _str_field(table, "status", where) or ReleaseStatus.SUPPORTED.value
        try:
            status = ReleaseStatus(status_text)
        except ValueError:
            allowed = " | ".join(s.value for s in ReleaseStatus)
            raise ConfigError(f"{where}: status '{status_text}' is not one of {allowed}") from None
        digest = _str_field(table, "digest", where)
        if digest is not None and not re.match(
            r"^(sha256:[0-9a-f]{64}|git-tree:[0-9a-f]{40})$", digest
        ):
            raise ConfigError(f"{where}: digest '{digest}' is not 'sha256:<64 hex>'")
        strip = table.get("strip", 0)
        if not isinstance(strip, int) or isinstance(strip, bool) or strip < 0:
            raise ConfigError(f"{where}: field 'strip' must be a non-negative integer")
        note = table.get("note", "")
        releases.append(
            Release(
                version=label,
                status=status,
                source=_str_field(table, "source", where),
                digest=digest,
                platform=_str_field(table, "platform", where),
                strip=strip,
                note=note if isinstance(note, str) else "",
                line=line,
            )
        )

    base = data.get("base")
    base_line = _key_line(text, "base")
    if not isinstance(base, str) or not base:
        raise ConfigError(
            f"{path}:{base_line}: missing field 'base' (the release patches/ applies to)"
        )
    if base not in seen:
        raise ConfigError(
            f"{path}:{base_line}: base '{base}' is not one of the [[version]] entries"
        )
    return VersionsFile(path=path, base=base, upstream=upstream, releases=tuple(releases))


def _section_line(text: str, name: str) -> int:
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(rf"^\s*\[\s*{re.escape(name)}\s*\]", line):
            return n
    return 1


def set_base(text: str, version: str) -> str:
    """The file's text with `base` set to ``version``; everything else kept as written."""
    import tomlkit  # writing only

    doc = tomlkit.parse(text)
    doc["base"] = version
    return tomlkit.dumps(doc)


def set_digest(text: str, version: str, digest: str) -> str:
    """The file's text with the `digest` of ``version`` recorded."""
    import tomlkit  # writing only

    doc = tomlkit.parse(text)
    for table in doc.get("version", []):
        if table.get("version") == version:
            table["digest"] = digest
            return tomlkit.dumps(doc)
    raise UnknownVersionError(f"version '{version}' is not tracked")
