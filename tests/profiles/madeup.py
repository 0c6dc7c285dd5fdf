"""A made-up profile and a made-up kind of change: what the generic audit and build must
handle without knowing poste.io or diffs (other ports, roots, placeholder, run dirs, script)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from patchkit import Project
from patchkit.core.model import PatchResult, PatchStatus
from patchkit.core.series import Series
from patchkit.kinds import Change, ChangeKind, ChangeOutcome, PathLister
from patchkit.kinds.base import NO_CONTEXT, ApplyContext, skipped_result
from patchkit.profiles.base import AuditRule, Profile, RunDir

__all__ = ["DEMO", "MadeUpSeries", "WholeFiles"]

DEMO = Profile(
    name="demo",
    description="a made-up image: configs under srv/, public ports 8025 and 8443 on @BIND@",
    placeholder="@BIND@",
    public_ports=frozenset({8025, 8443}),
    hostname_placeholder="@HOST@",
    audit_roots=("srv",),
    rules=(
        # its cache is a redis on port 7000 unless the config says otherwise
        AuditRule(
            component="cache",
            files=("srv/cache/redis.conf",),
            parser="redis",
            defaults={"port": 7000},
        ),
        AuditRule(
            component="web", files=("srv/web/*.conf",), parser="nginx", defaults={"root": "srv/web"}
        ),
        # its probes call curl and redis-cli (and nothing else is looked for)
        AuditRule(
            component="probe",
            files=("srv/bin/*.sh",),
            parser="commands",
            defaults={"programs": ("curl", "redis-cli")},
        ),
    ),
    run_dirs=(RunDir(path="srv/sockets", owner="demo", group="demo", mode=0o750),),
    start_script="srv/bin/start.sh",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class WholeFiles:
    """A made-up kind of change: whole files (path -> (content, git mode)) put over the tree."""

    name: str
    files: Mapping[str, tuple[bytes, str]]
    header: str = ""
    versions: tuple[str, ...] = ()  # the releases it is meant for; empty: every release

    @property
    def kind(self) -> ChangeKind:
        return ChangeKind.OVERLAY

    @property
    def upstream_versions(self) -> str | None:
        return " ".join(self.versions) or None

    @property
    def patch_header(self) -> str:
        return self.header

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self.files)

    def applies_to(self, version: str) -> bool:
        return not self.versions or version in self.versions

    def targets(self, lister: PathLister) -> tuple[str, ...]:
        return self.paths

    def apply(
        self,
        files: Mapping[str, bytes | None],
        *,
        version: str,
        context: ApplyContext = NO_CONTEXT,
    ) -> ChangeOutcome:
        if not self.applies_to(version):
            return ChangeOutcome(
                result=skipped_result(self.name, self.paths, self.upstream_versions, version)
            )
        same = all(files.get(p) == c for p, (c, _) in self.files.items())
        status = PatchStatus.ALREADY_APPLIED if same else PatchStatus.APPLIED
        return ChangeOutcome(
            result=PatchResult(name=self.name, status=status, files=self.paths),
            contents={p: c for p, (c, _) in self.files.items()},
            modes={p: m for p, (_, m) in self.files.items()},
        )

    def render(self) -> bytes:
        return (self.header + "".join(f"{p}\n" for p in self.files)).encode()


class MadeUpSeries(Project):
    """A project whose series is given as changes (another front end's workspace)."""

    def __init__(self, root: Path, changes: Sequence[Change]) -> None:
        super().__init__(root)
        self.made_up = tuple(changes)

    def changes(self, series: Series | None = None) -> list[Change]:
        return list(self.made_up)
