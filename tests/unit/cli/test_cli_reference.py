"""docs/cli.md against the real argparse parser, and what ``dvc-secure X --help`` shows."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from dvc_secure.cli.main import build_parser

CLI_MD = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
# 'dvc-secure audit export ...': a nested subcommand is documented as 'PARENT CHILD'
_HEADING = re.compile(r"^#{2,3} `dvc-secure ([a-z][a-z-]*(?: [a-z][a-z-]*)?)([^`]*)`\s*$")
_FLAG = re.compile(r"^--?[a-zA-Z][\w-]*$")


def _nested(p: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:  # type: ignore[type-arg]
    return [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    """'name' -> parser, and 'name child' for the subcommands of a subcommand."""
    (sub,) = _nested(build_parser())
    out = dict(sub.choices)
    for name, p in sub.choices.items():
        for nested in _nested(p):
            out.update({f"{name} {child}": q for child, q in nested.choices.items()})
    return out


def _one_line_helps() -> dict[str, str]:
    (sub,) = _nested(build_parser())
    out = {a.dest: str(a.help) for a in sub._choices_actions}
    for name, p in sub.choices.items():
        for nested in _nested(p):
            out.update({f"{name} {a.dest}": str(a.help) for a in nested._choices_actions})
    return out


def _documented() -> dict[str, str]:
    """Subcommand -> the synopsis in its docs/cli.md heading."""
    out: dict[str, str] = {}
    for line in CLI_MD.read_text(encoding="utf-8").splitlines():
        m = _HEADING.match(line)
        if m:
            assert m.group(1) not in out, f"docs/cli.md documents '{m.group(1)}' twice"
            out[m.group(1)] = m.group(2)
    return out


def _synopsis(text: str) -> tuple[set[str], set[str]]:
    """(option strings, positional placeholders) a heading's synopsis shows."""
    flags: set[str] = set()
    positionals: set[str] = set()
    after_flag = False
    for token in re.split(r"[\s\[\]|]+", text):
        if not token or token == "...":
            continue
        if token.startswith("-"):
            for flag in token.split("/"):  # '-o/--output': both spellings
                assert _FLAG.match(flag), f"malformed option '{flag}' in docs/cli.md"
                flags.add(flag)
            after_flag = True
        elif after_flag:
            after_flag = False  # the option's argument (PATH, N, file|os-keyring, ...)
        elif re.fullmatch(r"[A-Z][A-Z0-9_]*", token):
            positionals.add(token)
    return flags, positionals


def _parser_options(p: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    flags: set[str] = set()
    positionals: set[str] = set()
    for action in p._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            flags.update(action.option_strings)
        else:
            positionals.add(str(action.metavar or action.dest.upper()))
    return flags, positionals


def test_every_subcommand_is_documented_and_nothing_else() -> None:
    documented = _documented()
    parser = _subcommands()
    assert sorted(set(parser) - set(documented)) == [], "subcommands missing from docs/cli.md"
    assert sorted(set(documented) - set(parser)) == [], "docs/cli.md documents unknown subcommands"


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_is_documented_and_exists(name: str) -> None:
    synopsis = _documented().get(name)
    assert synopsis is not None, f"docs/cli.md has no heading for 'dvc-secure {name}'"
    doc_flags, doc_positionals = _synopsis(synopsis)
    flags, positionals = _parser_options(_subcommands()[name])
    assert sorted(flags - doc_flags) == [], f"options of '{name}' missing from its docs/cli.md heading"
    assert sorted(doc_flags - flags) == [], f"docs/cli.md shows options '{name}' does not have"
    assert sorted(positionals - doc_positionals) == [], f"arguments of '{name}' missing from docs/cli.md"
    assert sorted(doc_positionals - positionals) == [], f"docs/cli.md shows arguments '{name}' does not take"


def test_synopsis_parser_reads_options_arguments_and_placeholders() -> None:
    # the checker itself: a placeholder after an option is its argument, not a positional
    flags, positionals = _synopsis(" TARGET [--rev REV | -j/--jobs N] [--store file|os-keyring] [--x]")
    assert flags == {"--rev", "-j", "--jobs", "--store", "--x"}
    assert positionals == {"TARGET"}


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_subcommand_help_starts_with_its_one_line_description(name: str) -> None:
    line = _one_line_helps()[name]
    shown = " ".join(_subcommands()[name].format_help().split())
    assert " ".join(line.split()) in shown


# --- every 'dvc-secure SUBCOMMAND --flag' any document shows exists -----------------------

DOCS = [CLI_MD.parents[1] / "README.md", *sorted(CLI_MD.parent.rglob("*.md"))]
_SPAN = re.compile(r"`(dvc-secure [^`]+)`")
_CODE_LINE = re.compile(r"^\s*(?:\$ |- run: |run: )?(dvc-secure \S.*)$")
# program output shown in code blocks, not commands: '<hook name>: ...' and gc's warning
_OUTPUT = re.compile(r"dvc-secure (?:[a-z-]+: |kept \d+ object)")
_END = re.compile(r"\s(?:#|&&|\|\||\||;|>)\s.*$|[;)]$")  # end of the command on that line


def documented_invocations() -> list[tuple[str, int, str]]:
    """(document, line, 'dvc-secure ...') for commands in code spans and code blocks."""
    found = []
    for doc in DOCS:
        in_block = False
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("```"):
                in_block = not in_block
                continue
            if in_block:
                m = _CODE_LINE.match(line)
                texts = [m.group(1)] if m and not _OUTPUT.match(m.group(1)) else []
            else:
                texts = _SPAN.findall(line)
            rel = doc.relative_to(CLI_MD.parents[1]).as_posix()
            found += [(rel, number, _END.sub("", t).strip()) for t in texts]
    return found


def _invocation_problems(text: str, parsers: dict[str, argparse.ArgumentParser]) -> list[str]:
    words = text.split()
    sub = words[1] if len(words) > 1 else ""
    if sub.startswith("-"):
        return [] if sub in ("--version", "--help", "-h") else [f"unknown option {sub}"]
    if sub not in parsers:
        return [f"unknown subcommand '{sub}'"]
    if len(words) > 2 and f"{sub} {words[2]}" in parsers:  # 'audit export --follow'
        sub = f"{sub} {words[2]}"
    flags, _ = _parser_options(parsers[sub])
    flags |= {"-h", "--help"}
    problems = []
    for word in words[2:]:
        flag = word.split("=", 1)[0]
        if _FLAG.match(flag) and flag not in flags:
            problems.append(f"'{sub}' has no option {flag}")
    return problems


def test_every_documented_invocation_exists() -> None:
    parsers = _subcommands()
    found = documented_invocations()
    assert len(found) > 50  # the scan itself works
    problems = [f"{doc}:{line}: {text}: {p}" for doc, line, text in found
                for p in _invocation_problems(text, parsers)]
    assert problems == []


def test_invocation_check_catches_unknown_subcommands_and_flags() -> None:
    parsers = _subcommands()
    assert _invocation_problems("dvc-secure verify --rev A..B --remote", parsers) == []
    assert _invocation_problems("dvc-secure verifyy", parsers) == ["unknown subcommand 'verifyy'"]
    assert _invocation_problems("dvc-secure seal --fast x", parsers) == ["'seal' has no option --fast"]
    assert _invocation_problems("dvc-secure audit export --follow", parsers) == []
    assert _invocation_problems("dvc-secure audit --follow", parsers) == [
        "'audit' has no option --follow"]
