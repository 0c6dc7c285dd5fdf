"""Running the audit: every rule of a profile over a file view, each listener and each
connection judged.

:func:`audit_view` audits any :class:`~patchkit.audit.view.FileView`; :func:`audit_release`
builds the view of an imported release (the series applied in memory, as `check` applies
it) from a :class:`~patchkit.ops.workspace.Workspace`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from patchkit.audit.model import AuditResult, Connection, Listener, Problem
from patchkit.audit.parsers import PARSERS
from patchkit.audit.parsers._common import matches
from patchkit.audit.policy import judge, judge_connection
from patchkit.audit.view import FileView, TreeView
from patchkit.core.model import NOT_TRIED, CheckResult
from patchkit.core.patchfile import Patch
from patchkit.kinds import Change, PathLister
from patchkit.ops.build import patched_tree
from patchkit.ops.check import as_changes
from patchkit.profiles import GENERIC, profile_for
from patchkit.profiles.base import AuditRule, Profile

if TYPE_CHECKING:
    from patchkit.ops.workspace import Workspace

__all__ = [
    "VERIFIED_FIELD",
    "audit_release",
    "audit_view",
    "offline_unverifiable",
    "unverified_files",
]

# The header field of a change that cannot be verified offline, as DEP-3 writes it: a diff's
# header, or the TOML header of an edit or overlay (`verified = "offline-unverifiable"`),
# which the change gives as DEP-3 fields (`Change.patch_header`).
VERIFIED_FIELD = re.compile(r"^verified:[ \t]*offline-unverifiable\b", re.IGNORECASE | re.MULTILINE)


def _no_paths(_patterns: Sequence[str]) -> Sequence[str]:
    return ()


def offline_unverifiable(change: Change) -> bool:
    """Whether ``change``'s header says it cannot be verified offline."""
    return VERIFIED_FIELD.search(change.patch_header) is not None


def unverified_files(
    changes: Sequence[Patch | Change],
    check: CheckResult | None,
    lister: PathLister = _no_paths,
) -> dict[str, str]:
    """Files that an offline-unverifiable change would change but that was not tried here
    (outside its release range): path -> change name. ``lister`` resolves globs of kinds that
    target globs, on the tree checked."""
    if check is None:
        return {}
    not_tried = {p.name for p in check.patches if p.status in NOT_TRIED}
    out: dict[str, str] = {}
    for change in as_changes(changes):
        if change.name in not_tried and offline_unverifiable(change):
            for path in change.targets(lister):
                out.setdefault(path, change.name)
    return out


def audit_view(
    view: FileView,
    *,
    version: str = "",
    patched: bool = False,
    unverified: Mapping[str, str] | None = None,
    strict: bool = False,
    profile: Profile = GENERIC,
    rules: Sequence[AuditRule] | None = None,
) -> AuditResult:
    """Run every rule (default: ``profile.rules``) over ``view``; judge each listener and
    each connection by ``profile``'s policy."""
    listeners: list[Listener] = []
    connections: list[Connection] = []
    problems: list[Problem] = []
    pending = dict(unverified or {})
    for rule in profile.rules if rules is None else rules:
        parser = PARSERS[rule.parser]

        def emit(found: Listener | Connection) -> None:
            if isinstance(found, Connection):
                connections.append(judge_connection(found, profile, pending))
            else:
                listeners.append(judge(found, profile, pending))

        def fail(file: str, line: int, message: str, _rule: AuditRule = rule) -> None:
            problems.append(
                Problem(component=_rule.component, file=file, line=line, message=message)
            )

        for pattern in rule.files:
            for path in matches(view, pattern):
                parser(view, path, rule, emit, fail)
    listeners.sort(key=lambda x: (x.component, x.file, x.line, x.address or "", x.port or 0))
    connections.sort(
        key=lambda x: (x.component, x.file, x.line, x.host or "", x.port or 0, x.socket or "")
    )
    return AuditResult(
        version=version,
        patched=patched,
        listeners=tuple(listeners),
        connections=tuple(connections),
        problems=tuple(problems),
        strict=strict,
    )


def audit_release(
    workspace: Workspace,
    version: str | None = None,
    *,
    patched: bool = True,
    strict: bool = False,
    profile: Profile | None = None,
) -> AuditResult:
    """Audit ``version`` (default: base) with the series applied in memory (or as imported).

    ``profile``: default, the one the project chose (:func:`patchkit.profiles.profile_for`).
    """
    versions = workspace.versions
    profile = profile or profile_for(versions)
    version = version or versions.base
    tree = workspace.release_tree(version)
    store = workspace.store
    changes = list(workspace.changes()) if patched else []
    entries = store.ls_tree(tree, profile.audit_roots)
    with store.blob_reader() as reader:
        overlay: Mapping[str, bytes | None] = {}
        check = None
        if patched:
            pt = patched_tree(reader, version=version, tree=tree, patches=changes, store=store)
            overlay, check = pt.changes, pt.check

        def lister(patterns: Sequence[str]) -> Sequence[str]:
            return reader.list_paths(tree, patterns)

        view = TreeView(reader, entries, overlay)
        return audit_view(
            view,
            version=version,
            patched=patched,
            unverified=unverified_files(changes, check, lister),
            strict=strict,
            profile=profile,
        )
