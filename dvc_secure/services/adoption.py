"""Adopting dvc-secure in a repository that already has DVC history (``dvc-secure init``).

Commits from before the first keyring commit are outside the verified range (the engine
reports them as ``unsealed-before-adoption``). What is tracked *now* must be sealed in the
adoption commit, as version 1: its data is pushed to the secure remote (encrypted), then
sealed, so the seal pins the stored ciphertext as any later seal does.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dvc_secure.adapters.dvc.config_file import dvc_remotes
from dvc_secure.core.sidecar.metafile import parse_outputs
from dvc_secure.core.sidecar.model import sidecar_path_for
from dvc_secure.errors import DvcSecureError
from dvc_secure.services.sealing import seal_metafiles, workspace_metafiles


def unsealed_outputs(root: Path) -> list[str]:
    """Metafiles in the workspace that track data and have no sidecar yet."""
    out = []
    for metafile in workspace_metafiles(root):
        if (root / sidecar_path_for(metafile)).exists():
            continue
        try:
            declared = parse_outputs((root / metafile).read_bytes(), metafile)
        except (DvcSecureError, OSError):
            continue  # unreadable: 'dvc-secure seal' names the problem
        if declared:
            out.append(metafile)
    return out


@dataclass
class SealExistingResult:
    remote: str | None
    sealed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # metafile, why, fix


def seal_existing(root: Path, metafiles: list[str]) -> SealExistingResult:
    """Push the data of ``metafiles`` to the default (secure) remote, then seal each one
    as version 1. A metafile that cannot be sealed is reported with its fix; the others
    are still sealed."""
    remotes = dvc_remotes(root / ".dvc")
    remote = remotes.default
    result = SealExistingResult(remote)
    if not remotes.is_secure(remote):
        fix = "dvc-secure init --remote <storage> --seal-existing"
        result.failed = [(m, "the default DVC remote is not a secure:// remote", fix)
                         for m in metafiles]
        return result
    assert remote is not None
    push = subprocess.run([sys.executable, "-m", "dvc", "push", "-q", "-r", remote, *metafiles],
                          cwd=root, text=True, capture_output=True)
    pushed_ok = push.returncode == 0
    for metafile in metafiles:
        try:
            seal_metafiles(root, [metafile])
        except DvcSecureError as exc:
            why = exc.message
            if not pushed_ok:
                tail = (push.stderr.strip().splitlines() or ["failed"])[-1]
                why += f" (dvc push -r {remote}: {tail})"
            result.failed.append((metafile, why,
                                  f"dvc pull {metafile} && dvc push -r {remote} {metafile} && "
                                  f"dvc-secure seal {metafile}"))
        else:
            result.sealed.append(metafile)
    return result
