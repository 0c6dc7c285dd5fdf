"""`patchkit completion bash|zsh`: generated from the parser, so it offers every command and option.

The expected sets are read from the parser itself: a command or option added later and not
completed fails here without this file being edited.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from patchkit.cli import main
from patchkit.cli.commands.completion import completion_script
from patchkit.cli.main import build_parser


def visible_options(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings shown in this parser's --help (the hidden ones repeat global options)."""
    return {s for a in parser._actions if a.help is not argparse.SUPPRESS for s in a.option_strings}


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def script(tmp_path: Path, shell: str, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["completion", shell]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.endswith("\n")
    path = tmp_path / f"patchkit.{shell}"
    path.write_text(out)
    return path


def bash_complete(path: Path, *words: str) -> set[str]:
    """What bash offers for the command line ``words`` (the last one being completed)."""
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {path}\n"
        f"COMP_WORDS=({quoted})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_shtab_patchkit\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        check=True,
        cwd=path.parent,
    )
    return set(filter(None, done.stdout.splitlines()))


def test_bash_completes_every_command_and_every_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    path = script(tmp_path, "bash", capsys)
    parser = build_parser()
    subs = commands(parser)
    # A command name from its first letters, in a real bash with the script sourced.
    assert bash_complete(path, "patchkit", "che") == {"check"}
    assert bash_complete(path, "patchkit", "") == set(subs)
    assert bash_complete(path, "patchkit", "-") == visible_options(parser)
    for name, sub in subs.items():
        assert bash_complete(path, "patchkit", name, "-") == visible_options(sub), name
    # Choices come from the parser too.
    assert bash_complete(path, "patchkit", "completion", "") == {"bash", "zsh"}
    assert bash_complete(path, "patchkit", "matrix", "--format", "j") == {"json", "junit"}
    # A DIR option completes directories.
    (tmp_path / "somedir").mkdir()
    (tmp_path / "somefile").write_text("")
    assert bash_complete(path, "patchkit", "--project", "some") == {"somedir"}


def test_zsh_script_offers_every_command_and_option_and_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = script(tmp_path, "zsh", capsys)
    text = path.read_text()
    assert text.startswith("#compdef patchkit")
    parser = build_parser()
    for name, sub in commands(parser).items():
        assert f"\n    {name}:'" in text, name  # the command list with its help
        section = text.split(f"_shtab_patchkit_{name}_options=(", 1)[1].split("\n)\n", 1)[0]
        for option in visible_options(sub):
            assert option in section, (name, option)
    top = text.split("_shtab_patchkit_options=(", 1)[1].split("\n)\n", 1)[0]
    for option in visible_options(parser):
        assert option in top, option
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed: the script's text is checked, not loaded")
    subprocess.run([zsh, "-n", str(path)], check=True)
    # Loaded the way `fpath` + compinit load it, zsh knows the completion for `patchkit`.
    (tmp_path / "fpath").mkdir()
    shutil.copy(path, tmp_path / "fpath" / "_patchkit")
    program = (
        f"fpath=({tmp_path / 'fpath'} $fpath); autoload -Uz compinit; "
        f"compinit -u -d {tmp_path / 'zcompdump'}; print -r -- $_comps[patchkit]"
    )
    done = subprocess.run([zsh, "-f", "-c", program], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "_patchkit", done.stderr


def test_completion_script_is_the_same_for_every_call() -> None:
    parser = build_parser()
    assert completion_script(parser, "bash") == completion_script(parser, "bash")
