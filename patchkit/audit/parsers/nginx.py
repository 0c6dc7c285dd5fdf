"""nginx.conf and what it ``include``s: every ``listen`` of every ``server`` block.

Forms: ``80``, ``*:80``, ``[::]:443 ssl``, ``127.0.0.1:8080``, ``unix:/path``, flags after
the address; a ``server`` without ``listen`` is nginx's ``*:80``. Quotes, ``#`` comments.
A rule's ``ports`` names words an image's own start-up replaces with port numbers in its
templates (poste.io: ``listen __HTTP_PORT__;`` is port 80): they are read as those ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchkit.audit.model import Listener
from patchkit.audit.parsers._common import Emit, Fail, defaults, host_port, join, matches
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["DEFAULTS", "parse_nginx"]

# `listen 80` = *:80; include paths are relative to nginx's prefix (Debian: etc/nginx).
DEFAULTS: Mapping[str, Any] = {"port": 80, "root": "etc/nginx", "ports": {}}


def _nginx_tokens(text: str, file: str, fail: Fail) -> list[tuple[str, int]] | None:
    tokens: list[tuple[str, int]] = []
    i, no, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            no += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "{};":
            tokens.append((ch, no))
            i += 1
        elif ch in "\"'":
            start_no = no
            j = i + 1
            while j < n and text[j] != ch:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "\n":
                    no += 1
                j += 1
            if j >= n:
                fail(file, start_no, "unterminated quoted string")
                return None
            tokens.append((text[i + 1 : j], start_no))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                j += 1
            tokens.append((text[i:j], no))
            i = j
    return tokens


def parse_nginx(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    opts = defaults(DEFAULTS, rule)
    root = opts["root"]

    def walk(file: str, seen: tuple[str, ...]) -> None:
        if file in seen:
            return
        text = view.read(file)
        if text is None:
            return
        tokens = _nginx_tokens(text, file, fail)
        if tokens is None:
            return
        stmt: list[tuple[str, int]] = []
        blocks: list[list[bool]] = []  # per open block: [is_server, saw_listen]
        block_line: list[int] = []
        for tok, no in tokens:
            if tok == ";":
                if stmt:
                    directive(stmt, file, seen, blocks)
                stmt = []
            elif tok == "{":
                is_server = bool(stmt) and stmt[0][0] == "server" and len(stmt) == 1
                blocks.append([is_server, False])
                block_line.append(stmt[0][1] if stmt else no)
                stmt = []
            elif tok == "}":
                if stmt:
                    fail(file, stmt[0][1], f"directive {stmt[0][0]!r} not ended with ';'")
                    stmt = []
                if not blocks:
                    fail(file, no, "unbalanced '}'")
                    return
                is_server, saw_listen = blocks.pop()
                start = block_line.pop()
                if is_server and not saw_listen:
                    emit(
                        Listener(
                            component=rule.component,
                            file=file,
                            line=start,
                            kind="tcp",
                            address="*",
                            port=opts["port"],
                            origin="default",
                            reason="server block without listen",
                        )
                    )
            else:
                stmt.append((tok, no))
        if stmt:
            fail(file, stmt[0][1], f"directive {stmt[0][0]!r} not ended with ';'")
        if blocks:
            fail(file, block_line[-1], "unbalanced '{' (block not closed)")

    def directive(
        stmt: list[tuple[str, int]], file: str, seen: tuple[str, ...], blocks: list[list[bool]]
    ) -> None:
        name, no = stmt[0]
        args = [t for t, _ in stmt[1:]]
        if name == "include" and args:
            pattern = join(root, args[0])
            paths = matches(view, pattern)
            for sub in paths:
                walk(sub, (*seen, file))
        elif name == "listen":
            if not args:
                fail(file, no, "listen without an address")
                return
            for blk in reversed(blocks):
                if blk[0]:
                    blk[1] = True
                    break
            target = args[0]
            for word, port in opts["ports"].items():
                target = target.replace(word, str(port))
            if target.startswith("unix:"):
                emit(
                    Listener(
                        component=rule.component, file=file, line=no, kind="unix", socket=target[5:]
                    )
                )
                return
            hp = host_port(target, opts["port"])
            if hp is None or hp[1] is None:
                fail(file, no, f"cannot read listen {target!r}")
                return
            emit(
                Listener(
                    component=rule.component,
                    file=file,
                    line=no,
                    kind="tcp",
                    address=hp[0],
                    port=hp[1],
                )
            )

    walk(path, ())
