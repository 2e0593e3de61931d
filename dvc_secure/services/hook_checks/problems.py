"""What a hook reports: problems, exit codes, and the git calls every check shares."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dvc_secure.core.verification.findings import Finding

if TYPE_CHECKING:  # pygit2 is imported by pre-push and pre-commit's full path only
    import pygit2


EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2
ZERO = "0" * 40


DEFAULT_MAX_FILE_SIZE = 1 << 20


PROTECTED = ("confidential", "restricted")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    fix: str


def report(hook: str, problems: list[Problem], action: str) -> int:
    """Print the problems (what, then the fix); exit code 1 if there are any."""
    if not problems:
        return EXIT_OK
    print(f"dvc-secure {hook}: {action} blocked ({len(problems)} problem(s))", file=sys.stderr)
    for p in problems:
        where = f"{p.path}: " if p.path else ""
        print(f"  {where}{p.message}\n    fix: {p.fix}", file=sys.stderr)
    return EXIT_BLOCKED


def git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, text=True, capture_output=True)


def open_repository_at(start: Path) -> tuple[pygit2.Repository, Path] | None:
    import pygit2

    found = pygit2.discover_repository(str(start))
    if found is None:
        return None
    repo = pygit2.Repository(found)
    if repo.is_bare or not repo.workdir:
        return None
    return repo, Path(repo.workdir)


def quote_path(path: str) -> str:
    import shlex

    return shlex.quote(path)


def finding_problem(f: Finding) -> Problem:
    return Problem(f.dataset, f.message, f.fix)
