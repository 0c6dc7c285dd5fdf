"""`upstream-versions.toml`: which upstream releases exist, how to get them, which is base.

Pure: functions take the file's text and return values or new text. Rewrites go through
tomlkit so comments and layout survive.
"""

from __future__ import annotations

import enum
import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
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
    "WatchRules",
    "add_releases",
    "is_label",
    "order_labels",
    "parse_label",
    "parse_versions",
    "platform_label",
    "release_version",
    "set_base",
    "set_digest",
    "set_tag_digest",
    "sort_tags",
]

SCHEMA_VERSION = 1
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_PROFILE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# OS/ARCH[/VARIANT], as `--platform` takes it (images._manifest.Platform parses it for use).
_PLATFORM = re.compile(r"^[a-z0-9_.-]+/[a-z0-9_.-]+(/[a-z0-9_.-]+)?$")
PLATFORM_SEP = "@"  # <version>@<os>-<arch>[-<variant>]: a label never holds "@" (_LABEL)


def platform_label(version: str, platform: str) -> str:
    """The store label of one more platform of a multi-platform release.

    The first platform in ``platforms`` is the release itself (``version``); each other
    platform is imported as ``<version>@<os>-<arch>[-<variant>]``, a label no ``[[version]]``
    can have, so the refs never collide (``refs/patchkit/upstream/2.5.24@linux-arm64``).

    >>> platform_label("2.5.24", "linux/arm64/v8")
    '2.5.24@linux-arm64-v8'
    """
    return f"{version}{PLATFORM_SEP}{platform.replace('/', '-')}"


def release_version(label: str) -> str:
    """The ``[[version]]`` label behind a store label (a platform label's version part).

    >>> release_version("2.5.24@linux-arm64"), release_version("2.5.24")
    ('2.5.24', '2.5.24')
    """
    return label.partition(PLATFORM_SEP)[0]


_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|git-tree:[0-9a-f]{40})$")
_TAG_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_WATCH_KEYS = ("tags", "versions", "exclude", "status")
RULE_TIMEOUT = 1.0  # seconds one watch pattern may take on one tag (a tag is <= 128 characters)


class ReleaseStatus(enum.StrEnum):
    SUPPORTED = "supported"
    TESTING = "testing"
    EOL = "eol"
    MODEL = "model"  # assembled here from the image's open-source components

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchRules:
    r"""``[upstream.watch]``: which of the image's tags are releases, and their status.

    A tag is a release when it is a valid label, matches ``tags`` (default: it parses as a
    PEP 440 version), parses and lies in ``versions`` when that is given, and matches none
    of ``exclude``. Patterns are searched (anchor them with ``^...$``), Python ``re`` syntax.

    >>> rules = WatchRules(tags=r"^2\.\d+\.\d+$", versions=">=2.5", exclude=("^2\.5\.6$",))
    >>> rules.select(["latest", "2.4.9", "2.5.10", "2.5.6", "2.5.9", "2.6.0-rc1"])
    ['2.5.9', '2.5.10']
    """

    tags: str | None = None
    versions: str | None = None
    exclude: tuple[str, ...] = ()
    status: ReleaseStatus = ReleaseStatus.TESTING
    where: str = "[upstream.watch]"  # "FILE:LINE: [upstream.watch]", for messages

    def selects(self, tag: str) -> bool:
        """Whether the registry's ``tag`` names a release by these rules."""
        if not is_label(tag):
            return False
        version = parse_label(tag)
        if self.tags is None:
            if version is None:
                return False
        elif not self._search("tags", self.tags, tag):
            return False
        if self.versions is not None:
            from packaging.specifiers import SpecifierSet

            spec = SpecifierSet(self.versions)
            # pre-releases only when the specifier names one (PEP 440; explicit, as packaging's
            # default for contains() changed across its releases)
            if version is None or not spec.contains(version, prereleases=bool(spec.prereleases)):
                return False
        return not any(self._search("exclude", pattern, tag) for pattern in self.exclude)

    def select(self, tags: Iterable[str]) -> list[str]:
        """The tags that are releases, sorted by version (PEP 440 first, then by name)."""
        chosen = {tag for tag in tags if self.selects(tag)}
        return sort_tags(chosen)

    def _search(self, key: str, pattern: str, tag: str) -> bool:
        import regex

        try:
            return regex.search(pattern, tag, timeout=RULE_TIMEOUT) is not None
        except TimeoutError:
            raise ConfigError(
                f"{self.where}: {key} pattern {pattern!r} took over {RULE_TIMEOUT:g} s on tag "
                f"{tag!r}; simplify it"
            ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    name: str
    image: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # The profile audit and build use (patchkit.profiles); None: chosen from `name`.
    profile: str | None = None
    line: int = 0  # line of the [upstream] header, for messages
    # [upstream.watch]; None: the table is absent (`watch` then uses WatchRules())
    watch: WatchRules | None = None


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
    # A multi-platform release: each platform imported and checked (the first is the release
    # itself, the others are platform_label()s); empty: one platform, `platform` (or the default).
    platforms: tuple[str, ...] = ()
    # what the tag pointed to when imported or found by `watch` (an index for multi-arch images)
    tag_digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": self.version, "status": self.status.value}
        for key in ("source", "digest", "platform"):
            value = getattr(self, key)
            if value:
                d[key] = value
        if self.platforms:
            d["platforms"] = list(self.platforms)
        return d

    def platform_labels(self) -> tuple[tuple[str, str], ...]:
        """(platform, store label) of each platform of a multi-platform release, first the
        release's own label; empty for a single-platform release."""
        return tuple(
            (p, self.version if i == 0 else platform_label(self.version, p))
            for i, p in enumerate(self.platforms)
        )


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
        if "://" in image or image.startswith("oci:"):
            return f"{image}:{version}"
        return f"docker://{image}:{version}"


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


def is_label(text: str) -> bool:
    """Whether ``text`` may be a version label (it names a git ref)."""
    return bool(_LABEL.match(text)) and ".." not in text and not text.endswith(".lock")


def sort_tags(tags: Iterable[str]) -> list[str]:
    """PEP 440 labels by version (equal versions by name), then the others by name."""
    parsed = [(tag, parse_label(tag)) for tag in set(tags)]
    pep = sorted(((v, t) for t, v in parsed if v is not None), key=lambda p: (p[0], p[1]))
    return [t for _, t in pep] + sorted(t for t, v in parsed if v is None)


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


def _section_key_line(text: str, section: str, key: str, default: int) -> int:
    """The line of ``key = `` inside ``[section]`` (or ``watch.key`` under its parent)."""
    lines = text.splitlines()
    inside = False
    header = re.compile(rf"^\s*\[\s*{re.escape(section)}\s*\]")
    for n, line in enumerate(lines, 1):
        if re.match(r"^\s*\[", line):
            inside = bool(header.match(line))
            continue
        if inside and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
            return n
    dotted = section.rpartition(".")[2] + "." + key
    for n, line in enumerate(lines, 1):
        if re.match(rf"^\s*{re.escape(dotted)}\s*=", line):
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
        watch=_watch_rules(up.get("watch"), text, path, up_line) if "watch" in up else None,
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
        if not is_label(label):
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
        if digest is not None and not _DIGEST.match(digest):
            raise ConfigError(f"{where}: digest '{digest}' is not 'sha256:<64 hex>'")
        tag_digest = _str_field(table, "tag-digest", where)
        if tag_digest is not None and not _TAG_DIGEST.match(tag_digest):
            raise ConfigError(f"{where}: tag-digest '{tag_digest}' is not 'sha256:<64 hex>'")
        strip = table.get("strip", 0)
        if not isinstance(strip, int) or isinstance(strip, bool) or strip < 0:
            raise ConfigError(f"{where}: field 'strip' must be a non-negative integer")
        note = table.get("note", "")
        platforms = _platforms(table, where)
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
                platforms=platforms,
                tag_digest=tag_digest,
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


def _platforms(table: dict[str, Any], where: str) -> tuple[str, ...]:
    """``platforms = ["linux/amd64", "linux/arm64"]``: two or more distinct OS/ARCH[/VARIANT]."""
    value = table.get("platforms")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: field 'platforms' must be a list of strings")
    for v in value:
        if not _PLATFORM.match(v):
            raise ConfigError(
                f"{where}: platform '{v}' is not OS/ARCH[/VARIANT] (e.g. linux/amd64, linux/arm64/v8)"
            )
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: field 'platforms' lists a platform twice")
    if len(value) < 2:
        raise ConfigError(
            f"{where}: field 'platforms' needs two or more platforms (one: use 'platform')"
        )
    if table.get("platform") is not None:
        raise ConfigError(f"{where}: give either 'platform' or 'platforms', not both")
    return tuple(value)


def _watch_rules(raw: object, text: str, path: str, up_line: int) -> WatchRules:
    """``[upstream.watch]``, checked key by key; an error names the file, line and key."""
    import regex  # only where a file has watch rules: not on the matrix's path
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    header = _section_line(text, "upstream.watch", default=up_line)
    base = f"{path}:{header}: [upstream.watch]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{base}: must be a table ([upstream.watch])")

    def where(key: str) -> str:
        return f"{path}:{_section_key_line(text, 'upstream.watch', key, header)}: [upstream.watch] {key}"

    for key in raw:
        if key not in _WATCH_KEYS:
            raise ConfigError(f"{where(key)}: unknown key (known: {', '.join(_WATCH_KEYS)})")

    def pattern(key: str, value: object) -> str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where(key)}: must be a non-empty string (a regular expression)")
        try:
            regex.compile(value)
        except regex.error as e:
            raise ConfigError(f"{where(key)}: invalid regular expression '{value}': {e}") from None
        return value

    tags = pattern("tags", raw["tags"]) if "tags" in raw else None
    exclude_raw = raw.get("exclude", [])
    if not isinstance(exclude_raw, list):
        raise ConfigError(f"{where('exclude')}: must be a list of regular expressions")
    exclude = tuple(pattern("exclude", item) for item in exclude_raw)
    versions = raw.get("versions")
    if versions is not None:
        if not isinstance(versions, str) or not versions.strip():
            raise ConfigError(f'{where("versions")}: must be a PEP 440 specifier string (">=2.5")')
        try:
            SpecifierSet(versions)
        except InvalidSpecifier:
            raise ConfigError(
                f'{where("versions")}: {versions!r} is not a PEP 440 specifier (e.g. ">=2.5, <3")'
            ) from None
    status_text = raw.get("status", ReleaseStatus.TESTING.value)
    allowed = [s.value for s in ReleaseStatus if s is not ReleaseStatus.MODEL]
    if status_text not in allowed:
        raise ConfigError(f"{where('status')}: {status_text!r} is not one of {' | '.join(allowed)}")
    return WatchRules(
        tags=tags,
        versions=versions,
        exclude=exclude,
        status=ReleaseStatus(status_text),
        where=base,
    )


def _section_line(text: str, name: str, default: int = 1) -> int:
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(rf"^\s*\[\s*{re.escape(name)}\s*\]", line):
            return n
    return default


def set_base(text: str, version: str) -> str:
    """The file's text with `base` set to ``version``; everything else kept as written."""
    import tomlkit  # writing only

    doc = tomlkit.parse(text)
    doc["base"] = version
    return tomlkit.dumps(doc)


def set_digest(text: str, version: str, digest: str) -> str:
    """The file's text with the `digest` of ``version`` recorded."""
    return _set_field(text, version, "digest", digest)


def _set_field(text: str, version: str, key: str, value: str) -> str:
    import tomlkit  # writing only

    doc = tomlkit.parse(text)
    for table in doc.get("version", []):
        if table.get("version") == version:
            table[key] = value
            return tomlkit.dumps(doc)
    raise UnknownVersionError(f"version '{version}' is not tracked")


def set_tag_digest(text: str, version: str, tag_digest: str) -> str:
    """The file's text with the `tag-digest` of ``version`` recorded."""
    return _set_field(text, version, "tag-digest", tag_digest)


def add_releases(text: str, entries: Sequence[Mapping[str, str]]) -> str:
    """The file's text with a ``[[version]]`` table added for each of ``entries`` (their keys
    in the order given), each in version order among the PEP 440 entries (the file's order,
    ascending or descending, is kept), comments and layout kept.

    A label already tracked is left alone, so adding the same entries twice adds them once.
    """
    import tomlkit  # writing only
    from tomlkit.items import AoT, Comment, Whitespace

    doc = tomlkit.parse(text)
    aot = doc.get("version")
    if not isinstance(aot, AoT):
        aot = tomlkit.aot()
        doc.append("version", aot)
    for entry in entries:
        labels = [str(t.get("version", "")) for t in aot]
        if entry["version"] in labels:
            continue
        table = tomlkit.table()
        for key, value in entry.items():
            table[key] = value
        index = _insert_index(labels, entry["version"])
        if index > 0:
            # What follows the previous entry's last key (blank lines, a comment heading the
            # next entries) stays above the entry it heads: it moves below the new one.
            body = aot[index - 1].value.body
            trail: list[Any] = []
            while body and body[-1][0] is None and isinstance(body[-1][1], Whitespace | Comment):
                trail.insert(0, body.pop())
            body.append((None, tomlkit.ws("\n")))
            for _, item in trail:
                table.add(item)
            if not trail and index < len(aot):
                table.add(tomlkit.nl())
        else:
            table.add(tomlkit.nl())
        aot.insert(index, table)
    return tomlkit.dumps(doc)


def _insert_index(labels: Sequence[str], label: str) -> int:
    """Where ``label`` goes among ``labels`` (the file's order) to keep the version order."""
    new = parse_label(label)
    pep = [(i, v) for i, v in ((i, parse_label(t)) for i, t in enumerate(labels)) if v is not None]
    if new is None or not pep:
        return len(labels)
    steps = list(itertools.pairwise(pep))
    descending = sum(a[1] > b[1] for a, b in steps) > sum(a[1] < b[1] for a, b in steps)
    for i, v in pep:
        if (v < new) if descending else (v > new):
            return i
    return pep[-1][0] + 1
