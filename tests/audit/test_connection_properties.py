"""Property tests for what the connection parsers share: UCL trees, shell words, list
literals, targets."""

from __future__ import annotations

import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from patchkit.audit import MemoryView, audit_view
from patchkit.audit.parsers._scripts import list_elements, php_value, shell_words
from patchkit.audit.parsers._targets import host_and_port, server_list, url_target
from patchkit.audit.parsers.ucl import UclObject, read_ucl
from patchkit.profiles import POSTE

KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
SCALARS = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "S", "Zs")), max_size=20
).filter(lambda s: "\\" not in s)
Tree = dict[str, "str | Tree"]
TREES: st.SearchStrategy[Tree] = st.recursive(
    st.dictionaries(KEYS, SCALARS, max_size=4),
    lambda inner: st.dictionaries(KEYS, st.one_of(SCALARS, inner), max_size=4),
    max_leaves=12,
)


def ucl_text(tree: Tree, indent: str = "") -> str:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out.append(f"{indent}{key} {{\n{ucl_text(value, indent + '  ')}{indent}}}\n")
        else:
            quoted = value.replace('"', '\\"')
            out.append(f'{indent}{key} = "{quoted}"; # a comment\n')
    return "".join(out)


def plain(obj: UclObject) -> Tree:
    out: Tree = {}
    for key, values in obj.keys.items():
        [value] = values  # dictionaries: one value per key
        out[key] = plain(value.value) if isinstance(value.value, UclObject) else str(value.value)
    return out


@settings(max_examples=150, deadline=None)
@given(TREES)
def test_ucl_reads_back_what_was_written(tree: Tree) -> None:
    problems: list[tuple[str, int, str]] = []
    text = ucl_text(tree)
    read = read_ucl(MemoryView({"x.conf": text}), "x.conf", {}, lambda *p: problems.append(p))
    assert not problems, (text, problems)
    assert read is not None and plain(read) == tree


@settings(max_examples=100, deadline=None)
@given(TREES, st.integers(min_value=0, max_value=20), st.integers(min_value=0, max_value=20))
def test_ucl_higher_priority_include_replaces_a_key(tree: Tree, low: int, high: int) -> None:
    files = {
        "main.conf": (f'.include(priority={low}) "a.conf"\n.include(priority={high}) "b.conf"\n'),
        "a.conf": 'servers = "a";\n',
        "b.conf": 'servers = "b";\n',
    }
    read = read_ucl(MemoryView(files), "main.conf", {}, lambda *p: None)
    assert read is not None
    got = sorted(str(v.value) for v in read.get("servers"))
    assert got == (["a", "b"] if low == high else ["b"] if high > low else ["a"])


WORDS = st.lists(
    st.text(
        alphabet=st.characters(codec="ascii", exclude_characters="\x00\n\r$`\\"),
        min_size=1,
        max_size=12,
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(WORDS)
def test_shell_words_undo_shell_quoting(words: list[str]) -> None:
    line = " ".join(shlex.quote(w) for w in words) + " | grep x\n"
    assert [a.text for a in shell_words(line)] == words
    assert all(a.literal for a in shell_words(line))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.characters(codec="ascii", exclude_characters="\\'\x00"), max_size=10),
        max_size=6,
    )
)
def test_php_list_elements_are_their_literals(items: list[str]) -> None:
    text = "['redis-cli'" + "".join(f", '{i}'" for i in items) + "];"
    args, stop = list_elements(text, len("['redis-cli'"))
    assert [a.text for a in args] == items and text[stop:] == ";"
    joined = " . ".join(f"'{i}'" for i in items) or "''"
    assert php_value(joined).text == "".join(items)


HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
)
PORTS = st.integers(min_value=1, max_value=65535)


@settings(max_examples=100, deadline=None)
@given(HOSTS, PORTS, st.sampled_from(["http", "https", "redis", "tcp"]))
def test_targets_read_back(host: str, port: int, scheme: str) -> None:
    bare = host.strip("[]")
    assert (
        host_and_port(f"{host}:{port}", None).host,
        host_and_port(f"{host}:{port}", None).port,
    ) == (bare, port)
    target = url_target(f"{scheme}://user@{host}:{port}/path?q=1", None)
    assert (target.kind, target.host, target.port) == ("tcp", bare, port)
    listed = list(server_list(f"round-robin:{host}:{port}, /run/s.sock", 6379))
    assert [(t.kind, t.host or t.socket) for t in listed] == [
        ("tcp", bare),
        ("unix", "/run/s.sock"),
    ]


# Any text in any file a poste.io rule reads gives results or problems, never an exception.
POSTE_FILES = (
    "etc/nginx/nginx.conf",
    "etc/rspamd/rspamd.conf",
    "etc/dovecot/dovecot.conf",
    "etc/redis/redis.conf",
    "opt/haraka-smtp/config/plugins",
    "opt/haraka-smtp/config/rspamd.ini",
    "opt/haraka-smtp/config/redis.ini",
    "opt/haraka-smtp/plugins/dovecot_quota.js",
    "opt/www/webmail/config/config.inc.php",
    "opt/admin/config/services_base.yaml",
    "opt/admin/src/Base/Server/System.php",
    "healthcheck/nginx.sh",
    "etc/dovecot/sieve/report-spam.sieve",
)
PIECES = [*"abc:/$'\"{}[]();,=#.\\ \n\t-%@<>|&`*"]
PIECES += ["redis-cli", "rspamc", "curl", "msmtp", "proxy_pass", "servers", ".include"]
PIECES += ["connect(", "Predis\\Client:", "$config['imap_host']", "<<EOD\n", "rspamd\n"]
NOISE = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(POSTE_FILES), NOISE)
def test_any_text_gives_results_or_problems_never_an_exception(path: str, text: str) -> None:
    result = audit_view(MemoryView({path: text}), profile=POSTE)
    for p in result.problems:
        assert p.line >= 0 and p.file
