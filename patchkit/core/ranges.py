"""Release ranges (`Upstream-Versions:` in a diff header, `upstream-versions` in an edit file)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from patchkit.errors import PatchParseError

if TYPE_CHECKING:  # loaded when a patch has Upstream-Versions: most runs never need it
    from packaging.specifiers import SpecifierSet

__all__ = ["check_range", "in_range"]


_SPEC_START = ("<", ">", "=", "!", "~")


def _parse_ranges(value: str, where: str) -> tuple[SpecifierSet | None, frozenset[str]]:
    specs: list[str] = []
    labels: set[str] = set()
    items = [item.strip() for item in value.split(",")]
    if not any(items):
        raise PatchParseError(f"{where}: empty Upstream-Versions: give a PEP 440 range or labels")
    for item in items:
        if not item:
            continue
        if item.startswith(_SPEC_START):
            specs.append(item)
        else:
            labels.add(item)
    spec_set = None
    if specs:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            spec_set = SpecifierSet(",".join(specs))
        except InvalidSpecifier as e:
            raise PatchParseError(f"{where}: invalid Upstream-Versions {value!r}: {e}") from e
    return spec_set, frozenset(labels)


def check_range(value: str, where: str) -> None:
    """Raise ``PatchParseError`` (naming ``where``) unless ``value`` is a valid range."""
    _parse_ranges(value, where)


def in_range(value: str | None, version_label: str, *, where: str = "Upstream-Versions") -> bool:
    """Whether the range ``value`` includes the release ``version_label`` (``None``: every release).

    The value is a comma-separated list mixing PEP 440 specifiers (items that start with
    ``< > = ! ~``) and bare labels. A release is in range when its label is listed bare (exact
    string match), or when there is at least one specifier, the label parses as a
    :class:`~packaging.version.Version` and every specifier admits it (pre-releases included).
    A label that does not parse is therefore outside every range unless named.

    >>> in_range(">=2.5, model-bookworm", "model-bookworm")
    True
    >>> in_range(">=2.5, <3", "3.0")
    False
    """
    if value is None:
        return True
    spec_set, labels = _parse_ranges(value, where)
    if version_label in labels:
        return True
    if spec_set is None:
        return False
    from packaging.version import InvalidVersion, Version

    try:
        version = Version(version_label)
    except InvalidVersion:
        return False
    return spec_set.contains(version, prereleases=True)
