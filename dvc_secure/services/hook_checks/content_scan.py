"""Content scans of staged blobs: size limits, private keys, protected data outside DVC."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dvc_secure.adapters.git import plumbing
from dvc_secure.adapters.git.plumbing import ObjectReader, RawChange
from dvc_secure.errors import DvcSecureError
from dvc_secure.services.hook_checks.problems import DEFAULT_MAX_FILE_SIZE, Problem, quote_path

if TYPE_CHECKING:  # pygit2 is imported by pre-push and pre-commit's full path only

    pass


KEY_RE = re.compile(
    rb"(AGE-SECRET-KEY-1|DVC-SECURE-SIGNING-KEY-1)[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{40,}",
    re.IGNORECASE)


SCAN_LIMIT = 64 << 20


def max_file_size(config: dict[str, list[str]]) -> int:
    values = config.get("dvc-secure.maxfilesize")
    try:
        return plumbing.config_int(values[-1]) if values else DEFAULT_MAX_FILE_SIZE
    except ValueError:
        return DEFAULT_MAX_FILE_SIZE


def allowed(patterns: list[str], path: str) -> bool:
    """Paths exempted from the content scans: ``git config --add dvc-secure.allow GLOB``."""
    import fnmatch

    return any(fnmatch.fnmatch(path, p) for p in patterns)


def git_config(root: Path) -> dict[str, list[str]]:
    """The config values the hooks read (dvc-secure.*, and user.* for sealing): one process."""
    return plumbing.config_values(root, r"^(dvc-secure|user)\.")


def scan_blobs(objects: ObjectReader, changes: Iterable[RawChange],
               config: dict[str, list[str]]) -> list[Problem]:
    """Key material, identities and large plaintext files among the staged additions."""
    problems: list[Problem] = []
    todo = [c for c in changes if c.new is not None]
    if not todo:
        return problems
    limit = max_file_size(config)
    patterns = [p for p in config.get("dvc-secure.allow", []) if p]
    for ch in todo:
        if allowed(patterns, ch.path):
            continue
        assert ch.new is not None
        if ch.new_mode == "160000":
            continue  # a submodule: a commit of another repository, not content
        got = objects.get(ch.new)
        if got is None or got[1] != "blob":
            problems.append(Problem(
                ch.path, f"the staged content ({ch.new[:12]}) cannot be read from git, so it "
                "was not checked for key material or size",
                f"git add {quote_path(ch.path)} (or repair the repository with 'git fsck')"))
            continue
        data = got[2]
        size = len(data)
        if size <= SCAN_LIMIT and KEY_RE.search(data):
            problems.append(key_problem(ch.path, data))
            continue
        special = plumbing.relevant(ch.path) or ch.path.endswith((".gitignore", ".dvcignore"))
        if limit > 0 and size > limit and not special:
            problems.append(Problem(
                ch.path,
                f"{size} bytes of plaintext data staged straight into git (limit {limit}; "
                "git config dvc-secure.maxFileSize)",
                f"git rm --cached -q {quote_path(ch.path)} && dvc add {quote_path(ch.path)}"))
    return problems


def key_problem(path: str, data: bytes) -> Problem:
    from dvc_secure.core.keys.identity import Identity

    kind = "secret key material"
    try:
        Identity.from_text(data.decode("utf-8"), path)
        kind = "a plaintext dvc-secure identity (private keys)"
    except (DvcSecureError, UnicodeDecodeError):
        pass
    return Problem(path, f"{kind} staged for commit: anyone with read access to the repository "
                   "could decrypt and sign; if it was ever pushed, rotate it",
                   f"git rm --cached -q {quote_path(path)}")
