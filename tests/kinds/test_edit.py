"""patchkit.kinds.edit: edit files (parsing, every operation, counts, globs, bad input)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchkit.core.model import ChangeKind, PatchStatus
from patchkit.errors import EditFileError
from patchkit.kinds import kind_of, load_change
from patchkit.kinds.edit import EditChange, load_edit


def edit(text: str, name: str = "x.edit.toml") -> EditChange:
    return load_edit(text.encode(), name=name)


def run(
    change: EditChange, files: dict[str, str], version: str = "1.0"
) -> tuple[PatchStatus, dict[str, str], list[dict[str, object]]]:
    outcome = change.apply({p: t.encode() for p, t in files.items()}, version=version)
    out = {p: (c or b"").decode() for p, c in outcome.contents.items()}
    return outcome.status, out, [e.to_dict() for e in outcome.result.edits]


HEALTH = """#!/bin/sh
curl -fsS http://127.0.0.1/ >/dev/null
"""


def test_a_series_line_names_its_kind_by_its_form() -> None:
    assert kind_of("a.patch") is ChangeKind.DIFF
    assert kind_of("webmail.edit.toml") is ChangeKind.EDIT
    assert kind_of("overlay/") is ChangeKind.OVERLAY
    assert isinstance(
        load_change(b'[[edit]]\nfiles="a"\nappend="x"\n', name="a.edit.toml"), EditChange
    )


def test_replace_literal_applies_and_reports_the_count() -> None:
    change = edit(
        '[[edit]]\nfiles = "healthcheck/nginx.sh"\nreplace = "http://127.0.0.1"\nwith = \'http://$(hostname)\'\n'
    )
    status, out, edits = run(change, {"healthcheck/nginx.sh": HEALTH})
    assert status is PatchStatus.APPLIED
    assert "curl -fsS http://$(hostname)/" in out["healthcheck/nginx.sh"]
    assert edits[0]["status"] == "applied" and edits[0]["matches"] == 1
    assert edits[0]["op"] == "replace" and edits[0]["expected"] == "1"


def test_replace_is_already_applied_only_where_its_result_is_there_and_the_anchor_is_not() -> None:
    change = edit('[[edit]]\nfiles = "h.sh"\nreplace = "127.0.0.1"\nwith = "$(hostname)"\n')
    status, out, edits = run(change, {"h.sh": "curl http://$(hostname)/\n"})
    assert status is PatchStatus.ALREADY_APPLIED and out == {}
    # neither anchor nor result: a no-match, with the nearest line
    status, _, edits = run(change, {"h.sh": "echo hi\ncurl http://127.0.1.1/\n"})
    assert status is PatchStatus.CONFLICT
    assert edits[0]["reason"] == "no-match"
    assert edits[0]["nearest"] == {"line": 2, "text": "curl http://127.0.1.1/"}
    # nothing alike at all: no nearest line rather than a meaningless one
    assert run(change, {"h.sh": "echo hi\n"})[2][0]["nearest"] is None


def test_replace_whose_result_contains_its_anchor_is_not_applied_twice() -> None:
    change = edit('[[edit]]\nfiles = "c"\nreplace = "listen 80"\nwith = "listen 80 ssl"\n')
    status, out, _ = run(change, {"c": "listen 80;\n"})
    assert status is PatchStatus.APPLIED and out["c"] == "listen 80 ssl;\n"
    status, out, _ = run(change, {"c": out["c"]})
    assert status is PatchStatus.ALREADY_APPLIED and out == {}


def test_over_match_is_a_conflict_and_changes_nothing() -> None:
    change = edit('[[edit]]\nfiles = "c"\nreplace = "a"\nwith = "b"\n')
    status, out, edits = run(change, {"c": "a a\n"})
    assert status is PatchStatus.CONFLICT and out == {}
    assert edits[0]["reason"] == "over-match" and edits[0]["matches"] == 2


@pytest.mark.parametrize(
    ("count", "n", "ok"),
    [
        (2, 2, True),
        (2, 3, False),
        ('"2..3"', 3, True),
        ('"2..3"', 4, False),
        ('">=2"', 9, True),
        ('">=2"', 1, False),
    ],
)
def test_count_forms(count: object, n: int, ok: bool) -> None:
    change = edit(f'[[edit]]\nfiles = "c"\nreplace = "a"\nwith = "b"\ncount = {count}\n')
    status, out, _ = run(change, {"c": "a\n" * n})
    assert (status is PatchStatus.APPLIED) is ok
    if ok:
        assert out["c"] == "b\n" * n


def test_a_count_that_admits_zero_makes_an_optional_edit() -> None:
    change = edit('[[edit]]\nfiles = "c"\nreplace = "a"\nwith = "b"\ncount = "0..1"\n')
    assert run(change, {"c": "x\n"})[:2] == (PatchStatus.APPLIED, {})
    assert run(change, {"c": "a\n"})[:2] == (PatchStatus.APPLIED, {"c": "b\n"})


def test_regex_replace_uses_groups_and_multiline() -> None:
    change = edit(
        "[[edit]]\nfiles = \"c\"\nreplace = '^host\\s*=\\s*(\\S+)$'\n"
        "with = 'unix_socket = /var/run/rspamd/normal.sock'\nregex = true\n"
        "[[edit]]\nfiles = \"c\"\nreplace = '^(timeout) = (\\d+)$'\nwith = '\\1 = \\g<2>0'\nregex = true\n"
    )
    status, out, _ = run(change, {"c": "[main]\nhost = 127.0.0.1\ntimeout = 5\n"})
    assert status is PatchStatus.APPLIED
    assert out["c"] == "[main]\nunix_socket = /var/run/rspamd/normal.sock\ntimeout = 50\n"


def test_a_catastrophic_regex_is_stopped_within_a_bounded_time() -> None:
    change = edit("[[edit]]\nfiles = \"c\"\nreplace = '(a|aa)+$'\nwith = 'x'\nregex = true\n")
    start = time.monotonic()
    status, out, edits = run(change, {"c": "a" * 60 + "b\n"})
    assert time.monotonic() - start < 10
    assert status is PatchStatus.CONFLICT and out == {}
    assert edits[0]["reason"] == "timeout"


def test_delete_each_line_containing_the_text() -> None:
    change = edit('[[edit]]\nfiles = "c"\ndelete = "bind 127.0.0.1"\n')
    status, out, _ = run(change, {"c": "a\nbind 127.0.0.1 ::1\nb\n"})
    assert status is PatchStatus.APPLIED and out["c"] == "a\nb\n"


QUOTA = """plugin {
  quota_status_success = DUNNO
}
service quota-status {
  executable = quota-status -p postfix
  inet_listener {
    port = 13001
  }
  client_limit = 1
}
"""


def test_delete_from_through_delete_to_inclusive() -> None:
    change = edit(
        '[[edit]]\nfiles = "etc/dovecot/conf.d/90-quota.conf"\ndelete-from = "inet_listener"\ndelete-to = "}"\n'
    )
    status, out, _ = run(change, {"etc/dovecot/conf.d/90-quota.conf": QUOTA})
    assert status is PatchStatus.APPLIED
    text = out["etc/dovecot/conf.d/90-quota.conf"]
    assert "13001" not in text and "inet_listener" not in text
    assert "  client_limit = 1\n}\n" in text


def test_delete_from_without_its_end_is_a_no_match() -> None:
    change = edit('[[edit]]\nfiles = "c"\ndelete-from = "inet_listener"\ndelete-to = "}"\n')
    status, _, edits = run(change, {"c": "inet_listener {\n  port = 1\n"})
    assert status is PatchStatus.CONFLICT and edits[0]["reason"] == "no-match"


PLUGINS = "# plugins\nstatus_http\nrcpt_to.in_host_list\n"


def test_insert_after_each_anchor_then_already_applied() -> None:
    change = edit(
        '[[edit]]\nfiles = ["opt/haraka-smtp/config/plugins", "opt/haraka-submission/config/plugins"]\n'
        'insert-after = "status_http"\nlines = ["inbound_ips", "bind_hostname"]\n'
    )
    files = {
        "opt/haraka-smtp/config/plugins": PLUGINS,
        "opt/haraka-submission/config/plugins": PLUGINS,
    }
    status, out, edits = run(change, files)
    assert status is PatchStatus.APPLIED and len(edits) == 2
    for text in out.values():
        assert text == "# plugins\nstatus_http\ninbound_ips\nbind_hostname\nrcpt_to.in_host_list\n"
    status, again, _ = run(change, out)
    assert status is PatchStatus.ALREADY_APPLIED and again == {}


def test_insert_before() -> None:
    change = edit('[[edit]]\nfiles = "c"\ninsert-before = "status_http"\nlines = ["first"]\n')
    status, out, _ = run(change, {"c": PLUGINS})
    assert (
        status is PatchStatus.APPLIED
        and out["c"] == "# plugins\nfirst\nstatus_http\nrcpt_to.in_host_list\n"
    )


def test_append_and_prepend_and_their_already_applied() -> None:
    change = edit(
        '[[edit]]\nfiles = "c"\nappend = """\n$config[\'x\'] = 1;\n"""\n'
        '[[edit]]\nfiles = "c"\nprepend = "<?php // patched\\n"\n'
    )
    status, out, _ = run(change, {"c": "<?php\n$a = 1;"})
    assert status is PatchStatus.APPLIED
    assert out["c"] == "<?php // patched\n<?php\n$a = 1;\n$config['x'] = 1;\n"
    status, again, edits = run(change, out)
    assert status is PatchStatus.ALREADY_APPLIED and again == {}
    assert [e["status"] for e in edits] == ["already-applied", "already-applied"]


def test_globs_with_braces_and_double_star_and_expect_files() -> None:
    change = edit(
        '[[edit]]\nfiles = "opt/admin/src/{AppBundle,Base}/**/System.php"\nexpect-files = 1\n'
        'replace = "rspamc stat"\nwith = "rspamc -h /var/run/rspamd/web.sock stat"\n'
    )
    files = {
        "opt/admin/src/Base/Server/System.php": "exec('rspamc stat');\n",
        "opt/other/System.php": "rspamc stat\n",
    }
    status, out, _ = run(change, files)
    assert status is PatchStatus.APPLIED and list(out) == ["opt/admin/src/Base/Server/System.php"]
    both = dict(files, **{"opt/admin/src/AppBundle/Server/System.php": "rspamc stat\n"})
    status, out, edits = run(change, both)
    assert status is PatchStatus.CONFLICT and edits[0]["reason"] == "too-many-files"


def test_fewer_files_than_expected_is_missing_target_and_zero_is_allowed_when_asked() -> None:
    strict = edit('[[edit]]\nfiles = "healthcheck/redis.sh"\nappend = "x"\n')
    status, _, edits = run(strict, {})
    assert status is PatchStatus.MISSING_TARGET and edits[0]["reason"] == "too-few-files"
    optional = edit(
        '[[edit]]\nfiles = "healthcheck/redis.sh"\nexpect-files = ">=0"\nappend = "x"\n'
    )
    status, out, _ = run(optional, {})
    assert status is PatchStatus.ALREADY_APPLIED or status is PatchStatus.APPLIED
    assert out == {}


def test_upstream_versions_outside_the_range_is_skipped() -> None:
    change = edit('upstream-versions = "<2.3.7"\n[[edit]]\nfiles = "c"\nappend = "x"\n')
    assert run(change, {"c": ""}, version="2.3.7")[0] is PatchStatus.SKIPPED
    assert run(change, {"c": ""}, version="2.3.6")[0] is PatchStatus.APPLIED


def test_header_keys_are_kept_and_render_is_the_file_itself() -> None:
    text = 'description = "Webmail via the hostname"\nverified = "fixture"\n[[edit]]\nfiles = "c"\nappend = "x"\n'
    change = edit(text)
    assert change.description == "Webmail via the hostname"
    assert change.header["verified"] == "fixture"
    assert change.render() == text.encode()
    assert change.paths == ("c",)


def test_json_of_an_edit_patch_has_kind_and_edits() -> None:
    change = edit('[[edit]]\nfiles = "c"\nreplace = "zz"\nwith = "y"\n')
    outcome = change.apply({"c": b"alpha\nbeta\n"}, version="1")
    d = outcome.result.to_dict()
    assert d["kind"] == "edit" and d["status"] == "conflict"
    assert set(d["edits"][0]) >= {
        "index",
        "file",
        "op",
        "status",
        "reason",
        "matches",
        "expected",
        "nearest",
    }


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[[edit]]\nfiles = "c"\nappend = \n', 3, "invalid TOML"),
        ('[[edit]]\nfiles = "c"\nappend = "x"\ncolour = 1\n', 4, "unknown key 'colour'"),
        ('[[edit]]\nfiles = "c"\nappend = "x"\ndelete = "y"\n', 4, "two operations"),
        ('[[edit]]\nfiles = "c"\nreplace = "a"\nwith = "b"\ncount = "lots"\n', 5, "bad count"),
        (
            '[[edit]]\nfiles = "c"\nreplace = "a("\nwith = "b"\nregex = true\n',
            3,
            "does not compile",
        ),
        ('[[edit]]\nfiles = "../etc/x"\nappend = "x"\n', 2, "'..' in path"),
        ('description = "d"\n', 1, "no [[edit]] table"),
        ('[[edit]]\nfiles = "c"\n', 1, "no operation"),
        ('[[edit]]\nfiles = "c"\nreplace = "a"\n', 3, "needs 'with'"),
        ('[[edit]]\nfiles = "c"\ndelete-from = "a"\n', 3, "needs delete-to"),
        ('[[edit]]\nfiles = "c"\nappend = "x"\ncount = 2\n', 4, "does not go with append"),
        (
            'upstream-versions = ">=x!"\n[[edit]]\nfiles = "c"\nappend = "x"\n',
            1,
            "Upstream-Versions",
        ),
        ('[[edit]]\nfiles = "c"\nreplace = "a"\nwith = "b"\ncount = -1\n', 5, "at least 0"),
    ],
)
def test_bad_edit_files_are_one_line_naming_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(EditFileError) as info:
        edit(text)
    message = str(info.value)
    assert message.startswith(f"patches/x.edit.toml:{line}: "), message
    assert words in message and "\n" not in message


lines_st = st.lists(st.text(alphabet="abc xyz=;", min_size=0, max_size=12), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    body=lines_st,
    anchor=st.sampled_from(["a", "x", "b=", "zz"]),
    insert=st.lists(st.text(alphabet="qrs", min_size=1, max_size=5), min_size=1, max_size=3),
)
def test_insert_after_then_again_is_already_applied_or_a_failure_never_a_second_insert(
    body: list[str], anchor: str, insert: list[str]
) -> None:
    text = "".join(line + "\n" for line in body)
    change = edit(
        f'[[edit]]\nfiles = "f"\ninsert-after = "{anchor}"\nlines = {insert!r}\ncount = ">=1"\n'.replace(
            "'", '"'
        )
    )
    status, out, _ = run(change, {"f": text})
    n = sum(anchor in line for line in body)
    if n == 0:
        assert status is PatchStatus.CONFLICT
        return
    if status is PatchStatus.APPLIED:
        result = out["f"]
        assert len(result.splitlines()) == len(body) + len(insert) * (
            n
            - sum(
                1
                for i, line in enumerate(body)
                if anchor in line and body[i + 1 : i + 1 + len(insert)] == insert
            )
        )
        second, again, _ = run(change, {"f": result})
        assert second is PatchStatus.ALREADY_APPLIED and again == {}


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(alphabet="ab\n", max_size=40),
    old=st.sampled_from(["a", "ab", "b\n"]),
    new=st.sampled_from(["c", "cd", ""]),
)
def test_replace_literal_replaces_exactly_the_counted_occurrences(
    body: str, old: str, new: str
) -> None:
    change = load_edit(
        f'[[edit]]\nfiles = "f"\nreplace = {old!r}\nwith = {new!r}\ncount = ">=1"\n'.replace(
            "'", '"'
        )
        .replace('\n"', '\\n"')
        .encode(),
        name="x.edit.toml",
    )
    status, out, edits = run(change, {"f": body})
    n = body.count(old)
    if n:
        assert status is PatchStatus.APPLIED and edits[0]["matches"] == n
        assert out.get("f", body) == body.replace(old, new)
    elif new and new in body:
        assert status is PatchStatus.ALREADY_APPLIED
    else:
        assert status is PatchStatus.CONFLICT and edits[0]["reason"] == "no-match"


def test_a_failure_carries_the_changes_verified_note() -> None:
    change = edit(
        'verified = "fixture shapes only"\n[[edit]]\nfiles = "healthcheck/redis.sh"\nappend = "x"\n'
    )
    outcome = change.apply({}, version="1")
    assert outcome.status is PatchStatus.MISSING_TARGET
    assert outcome.result.message.endswith("[verified: fixture shapes only]")
