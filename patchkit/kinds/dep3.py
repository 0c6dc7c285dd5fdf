"""DEP-3 style headers: what the TOML header of an edit or overlay becomes above a diff."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["TomlHeader", "dep3_header"]


def dep3_header(header: Mapping[str, str]) -> str:
    """``description`` first as ``Description:``, then the other keys, one field a line
    (continuation lines indented by one space, as DEP-3 folds them)."""
    fields = []
    keys = sorted(header, key=lambda k: (k != "description", k))
    for key in keys:
        name = "-".join(part.capitalize() for part in key.split("-"))
        lines = header[key].strip("\n").split("\n")
        body = lines[0] + "".join(f"\n {ln}" if ln.strip() else "\n ." for ln in lines[1:])
        fields.append(f"{name}: {body}\n")
    return "".join(fields) + ("\n" if fields else "")


class TomlHeader:
    """What the kinds whose header is TOML string keys (edits, overlays) read from it:
    ``upstream-versions``, ``description``, and the DEP-3 text a diff of them carries."""

    __slots__ = ()
    header: Mapping[str, str]

    @property
    def upstream_versions(self) -> str | None:
        return self.header.get("upstream-versions")

    @property
    def description(self) -> str:
        return self.header.get("description", "")

    @property
    def patch_header(self) -> str:
        return dep3_header(self.header)
