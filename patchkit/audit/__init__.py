"""The isolation audit: every network listener the configs of a release declare, and every
place they tell a component to connect.

Reads a tree (a release, patched in memory or not) through a small file view
(:mod:`~patchkit.audit.view`), runs one parser per config format
(:mod:`~patchkit.audit.parsers`) over the files a profile's rules name, and judges each
listener and each connection by the profile's policy (:mod:`~patchkit.audit.policy`; the profile is data, in
:mod:`patchkit.profiles`). :mod:`~patchkit.audit.driver` runs it, :mod:`~patchkit.audit.model`
holds the results, :mod:`~patchkit.audit.render` prints them as text.

* a unix socket is ``ok``;
* TCP on a loopback or wildcard address is ``forbidden`` (it collides between instances);
* a public port of the profile bound to its start-up placeholder is ``ok``, another port is not;
* TCP on any other specific address is ``ok``;
* a listener in a file that a change marked ``Verified: offline-unverifiable`` would
  change, where that change is skipped on this release, is ``unverified`` (reported, and
  a failure only with ``strict``);
* a config a rule cannot parse gives a problem naming file and line: a failure;
* a connection to a unix socket, the container's own hostname or the start-up placeholder
  is ``ok``, to loopback ``forbidden`` (a leak once nothing of ours listens there), one that
  cannot work as written (an nginx variable host without a resolver) a ``problem``, one the
  audit cannot judge (a name, a run-time expression) ``unverified``.

>>> view = MemoryView({"etc/redis/redis.conf": "bind 127.0.0.1\\nport 6379\\n"})
>>> [(l.address, l.port, l.verdict.value) for l in audit_view(view).listeners]
[('127.0.0.1', 6379, 'forbidden')]
"""

from __future__ import annotations

from patchkit.audit.driver import audit_release, audit_view, unverified_files
from patchkit.audit.model import AuditResult, Connection, Listener, Problem, Verdict
from patchkit.audit.parsers import PARSERS
from patchkit.audit.policy import LOOPBACK, WILDCARD, judge, judge_connection
from patchkit.audit.render import render_audit
from patchkit.audit.view import FileView, MemoryView, TreeView
from patchkit.profiles.base import AuditRule as Rule

__all__ = [
    "LOOPBACK",
    "PARSERS",
    "WILDCARD",
    "AuditResult",
    "Connection",
    "FileView",
    "Listener",
    "MemoryView",
    "Problem",
    "Rule",
    "TreeView",
    "Verdict",
    "audit_release",
    "audit_view",
    "judge",
    "judge_connection",
    "render_audit",
    "unverified_files",
]
