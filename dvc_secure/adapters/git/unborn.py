"""Whether a git repository certainly has no commit yet, read from its files (no pygit2,
no ``git`` process).

A repository fresh from ``git init`` has no history: no keyring version to walk (the
trust loader's first use) and no HEAD revision (the audit event). Saying so from three
file reads saves importing pygit2 (~30 ms of CPU) or starting ``git`` (~5 ms). The check is
conservative: anything it does not fully understand is "maybe", and the caller asks
pygit2 or git as before.
"""

from __future__ import annotations

import os
from pathlib import Path


def without_commits(root: Path) -> bool:
    """True only when the git repository found from ``root`` upwards (as pygit2 and git
    find it) certainly has no commit: a plain ``.git`` directory (no worktree, no reftable)
    whose HEAD names a branch and which holds no ref at all, loose or packed. False
    whenever unsure. (``git`` itself also honours GIT_DIR & co.: callers that stand for a
    ``git`` command check those first.)"""
    for folder in (root, *root.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            break
        if os.path.lexists(dotgit):
            return False  # a ``.git`` file (worktree, submodule): let pygit2 resolve it
    else:
        return False  # no .git directory: let pygit2 decide (it finds none, or a bare one)
    if (dotgit / "commondir").exists() or (dotgit / "reftable").exists():
        return False
    try:
        if not (dotgit / "HEAD").read_text(encoding="utf-8").startswith("ref: refs/"):
            return False  # detached: HEAD itself names a commit
        if (dotgit / "packed-refs").exists():
            with open(dotgit / "packed-refs", encoding="utf-8") as packed:
                if any(line.strip() and not line.startswith("#") for line in packed):
                    return False
    except (OSError, UnicodeDecodeError):
        return False
    refs = dotgit / "refs"
    if not refs.is_dir():
        return False
    for folder_path, folders, files in os.walk(refs):
        # a ref file, or a linked folder os.walk would not enter: maybe a commit
        if files or any(os.path.islink(os.path.join(folder_path, f)) for f in folders):
            return False
    return True
