"""Client programs called from scripts: ``redis-cli``, ``rspamc``, ``curl``, ``msmtp``.

A call is found wherever the program's name stands as a word outside comments: a shell
line (health checks, cron scripts), a command line inside a string (PHP ``shell_exec('rspamc
stat')``), or the first element of an argument list (PHP ``['redis-cli', 'client',
'list']``, sieve ``"rspamc" ["learn_spam"]``). Its target comes from its options, or from
the program's built-in default when it has none (``origin: default``):

* ``redis-cli``: ``-s`` socket, ``-u`` URI, ``-h``/``-p``; default 127.0.0.1:6379;
* ``rspamc``: ``-h``/``--connect`` (a path is a socket); default localhost, port 11334 for
  controller commands (learning, stat, fuzzy), else 11333;
* ``curl``: ``--unix-socket``, else the URL's host (``-x``/``--proxy`` wins);
* ``msmtp``: ``--host``/``--port``; without them the server comes from its configuration
  file, which the call does not show (a ``variable`` target).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from patchkit.audit.parsers._common import Emit, Fail, defaults
from patchkit.audit.parsers._scripts import (
    Arg,
    blank_comments,
    line_of,
    list_elements,
    shell_words,
    string_end,
)
from patchkit.audit.parsers._targets import Target, connection, host_and_port, url_target
from patchkit.audit.view import FileView
from patchkit.profiles.base import AuditRule

__all__ = ["PROGRAMS", "parse_commands"]

# (target, origin, note); origin "default" when the program's built-in target applies.
Found = tuple[Target, str, str]

_RSPAMC_CONTROLLER = frozenset(
    {
        "learn_spam",
        "learn_ham",
        "learn_class",
        "fuzzy_add",
        "fuzzy_del",
        "fuzzy_delhash",
        "stat",
        "stat_reset",
        "counters",
        "uptime",
        "add_symbol",
        "add_action",
    }
)
# curl options that take a value (the URL is the first argument that is neither).
_CURL_VALUES = frozenset(
    [
        "-o",
        "--output",
        "-H",
        "--header",
        "-d",
        "--data",
        "--data-raw",
        "--data-binary",
        "--data-urlencode",
        "-X",
        "--request",
        "-u",
        "--user",
        "-A",
        "--user-agent",
        "-e",
        "--referer",
        "-m",
        "--max-time",
        "--connect-timeout",
        "-w",
        "--write-out",
        "--retry",
        "-b",
        "--cookie",
        "-c",
        "--cookie-jar",
        "--cacert",
        "--cert",
        "--key",
        "-T",
        "--upload-file",
        "-F",
        "--form",
        "--resolve",
        "--connect-to",
        "-K",
        "--config",
        "-r",
        "--range",
        "-z",
        "--time-cond",
        "--interface",
    ]
)


def _option(args: Sequence[Arg], names: tuple[str, ...]) -> Arg | None:
    """The value of the last of ``names`` (``-h X``, ``--host X``, ``--host=X``)."""
    found: Arg | None = None
    for i, a in enumerate(args):
        for name in names:
            if a.text == name and i + 1 < len(args):
                found = args[i + 1]
            elif name.startswith("--") and a.text.startswith(name + "="):
                found = Arg(a.text[len(name) + 1 :], a.literal)
    return found


def _redis_cli(args: Sequence[Arg]) -> Found:
    sock = _option(args, ("-s",))
    if sock is not None:
        return Target("unix", socket=sock.text), "config", ""
    uri = _option(args, ("-u",))
    if uri is not None:
        return url_target(uri.text, 6379), "config", ""
    host, port = _option(args, ("-h",)), _option(args, ("-p",))
    target = host_and_port(host.text if host else "127.0.0.1", 6379)
    if port is not None:
        target = host_and_port(f"{target.host}:{port.text}", 6379)
    return target, "config" if host else "default", "" if host else "no -h: redis-cli's 127.0.0.1"


def _rspamc(args: Sequence[Arg]) -> Found:
    port = 11334 if any(a.text in _RSPAMC_CONTROLLER for a in args) else 11333
    where = _option(args, ("-h", "--connect"))
    if where is None:
        return host_and_port("localhost", port), "default", "no -h/--connect: rspamc's localhost"
    if where.text.startswith(("/", ".")):
        return Target("unix", socket=where.text), "config", ""
    return host_and_port(where.text, port), "config", ""


def _curl(args: Sequence[Arg]) -> Found:
    sock = _option(args, ("--unix-socket", "--abstract-unix-socket"))
    if sock is not None:
        return Target("unix", socket=sock.text), "config", ""
    proxy = _option(args, ("-x", "--proxy"))
    if proxy is not None:
        return url_target(proxy.text, 1080), "config", "through its proxy"
    url = _option(args, ("--url",))
    if url is None:
        rest = iter(args)
        for a in rest:
            if a.text in _CURL_VALUES:
                next(rest, None)
            elif not a.text.startswith("-"):
                url = a
                break
    if url is None:
        return Target("variable", host=None), "config", "no URL in the call"
    return url_target(url.text, 80), "config", ""


def _msmtp(args: Sequence[Arg]) -> Found:
    host, port = _option(args, ("--host",)), _option(args, ("--port",))
    if host is None:
        return (
            Target("variable", host=None),
            "default",
            "no --host: the server of msmtp's configuration file (msmtprc), not read here",
        )
    target = host_and_port(host.text, 25)
    if port is not None:
        target = host_and_port(f"{target.host}:{port.text}", 25)
    return target, "config", ""


PROGRAMS: Mapping[str, Callable[[Sequence[Arg]], Found]] = {
    "redis-cli": _redis_cli,
    "rspamc": _rspamc,
    "curl": _curl,
    "msmtp": _msmtp,
}

# `programs`: the programs a rule looks for (default: all of PROGRAMS).
DEFAULTS: Mapping[str, Any] = {"programs": tuple(PROGRAMS)}


def _style(path: str, text: str) -> str:
    if "<?php" in text or path.endswith(".php"):
        return "php"
    if path.endswith(".sieve"):
        return "sieve"
    if path.endswith((".js", ".mjs", ".cjs")):
        return "c"
    return "hash"


def parse_commands(view: FileView, path: str, rule: AuditRule, emit: Emit, fail: Fail) -> None:
    text = view.read(path)
    if text is None:
        return
    programs: tuple[str, ...] = tuple(defaults(DEFAULTS, rule)["programs"])
    clean = blank_comments(text, _style(path, text))
    names = "|".join(re.escape(p) for p in programs)
    pattern = re.compile(rf"(?<![\w.$/-])(?:/usr/local/bin/|/usr/bin/|/bin/)?({names})(?![\w.-])")
    for m in pattern.finditer(clean):
        program, start, end = m.group(1), m.start(), m.end()
        before = clean[start - 1] if start else ""
        after = clean[end] if end < len(clean) else ""
        if before in "'\"" and after == before:
            # an argument list's first element: `['redis-cli', ...]`, `"rspamc" [...]`
            rest = end + 1
            while rest < len(clean) and clean[rest] in " \t\n":
                rest += 1
            if clean[rest : rest + 1] == "[":
                rest += 1
            args, stop = list_elements(clean, rest)
            line_start = clean.rfind("\n", 0, start) + 1
            opening = max(clean.rfind("[", line_start, start), clean.rfind("(", line_start, start))
            written = clean[opening if opening >= 0 else start - 1 : stop].strip()
        elif before in "'\"":
            close = string_end(clean, start - 1)
            args = shell_words(clean[end:close])
            written = clean[start:close]
        else:
            line_end = clean.find("\n", end)
            args = shell_words(clean[end:])
            written = clean[start : len(clean) if line_end < 0 else line_end].strip()
        target, origin, note = PROGRAMS[program](args)
        emit(
            connection(
                target,
                component=rule.component,
                file=path,
                line=line_of(clean, start),
                directive=" ".join(written.split()),
                origin=origin,
                reason=f"{program}" + (f": {note}" if note else ""),
            )
        )
