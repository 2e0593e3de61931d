"""``dvc-secure overlap``: identical content across datasets or revisions, by the sealed
SHA-256 of every file (sidecars and sealed manifests; no dataset content is read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dvc_secure.adapters.git.history import normalise_metafile
from dvc_secure.core.governance.croissant import workspace_path
from dvc_secure.core.governance.overlap import (
    SPLITS_RELPATH,
    Overlap,
    SealedFile,
    SplitGroup,
    find_overlaps,
    parse_splits,
)
from dvc_secure.core.sidecar.metafile import parse_outputs
from dvc_secure.core.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.core.verification.findings import BAD_SIGNATURE, UNBOUND, UNSEALED, Finding
from dvc_secure.errors import ConfigurationError, DvcSecureError
from dvc_secure.services.governance.verified import SealedFiles, VerifiedRevision, verified_revision


@dataclass
class OverlapResult:
    checked: list[str]  # dataset labels
    overlaps: list[Overlap] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # a revision did not verify
    revisions: dict[str, str] = field(default_factory=dict)  # rev spec -> commit

    @property
    def ok(self) -> bool:
        return not self.overlaps and not self.findings


def split_target(target: str, default_rev: str | None) -> tuple[str, str | None]:
    """``data/test.dvc@v1.0`` -> (metafile, rev); without ``@``: the default revision."""
    path, sep, rev = target.rpartition("@")
    if sep and path and rev:
        return normalise_metafile(path), rev
    return normalise_metafile(target), default_rev


def load_splits(root: Path) -> list[SplitGroup]:
    path = root / ".dvc" / SPLITS_RELPATH
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            "no datasets given and no .dvc/" + SPLITS_RELPATH + " declaring splits",
            hint="name the datasets ('dvc-secure overlap data/train.dvc data/test.dvc') or "
            "declare them in .dvc/" + SPLITS_RELPATH + " (docs/governance.md)") from None
    return parse_splits(data, ".dvc/" + SPLITS_RELPATH)


WORKSPACE = "workspace"


def workspace_revision(root: Path, metafiles: list[str]) -> VerifiedRevision:
    """The sidecars in the working tree (what a pre-commit hook is about to commit): each
    must be validly signed by a sealer of the trusted keyring and bound to its metafile.
    Weaker than ``verify`` (no chain rules: the commit's CI gate checks those)."""
    from dvc_secure.adapters.local.repo_keyring import load_keyring

    ring = load_keyring(root / ".dvc")
    sealers = ring.sealer_keys()
    out = VerifiedRevision(WORKSPACE, [], keyring=ring)
    fix = "re-seal it: dvc-secure seal {mf}"
    for mf in metafiles:
        try:
            sc = Sidecar.from_bytes((root / (mf + SIDECAR_SUFFIX)).read_bytes(), mf + SIDECAR_SUFFIX)
            declared = parse_outputs((root / mf).read_bytes(), mf)
        except FileNotFoundError:
            out.findings.append(Finding(WORKSPACE, mf, UNSEALED, f"{mf} has no sidecar in the "
                                        "working tree", fix.format(mf=mf)))
            continue
        except DvcSecureError as exc:
            out.findings.append(Finding(WORKSPACE, mf, BAD_SIGNATURE, exc.message, fix.format(mf=mf)))
            continue
        if not sc.valid_signers(sealers):
            out.findings.append(Finding(WORKSPACE, mf, BAD_SIGNATURE, f"{mf}.seal is not "
                                        "validly signed by a writer or admin of the keyring",
                                        fix.format(mf=mf)))
        elif {p: o.oid for p, o in declared.items()} != {o.path: o.oid for o in sc.outputs}:
            out.findings.append(Finding(WORKSPACE, mf, UNBOUND, f"{mf} changed since it was "
                                        "sealed", fix.format(mf=mf)))
        else:
            out.sidecars[mf] = sc
    return out


def overlap(root: Path, targets: list[str], rev: str | None = None,
            include_empty: bool = False, allow_remote: bool = True,
            workspace: bool = False) -> OverlapResult:
    """``targets``: two or more datasets (``PATH`` or ``PATH@REV``); none: every group of
    ``.dvc/secure/splits.json``, each checked on its own. ``workspace``: targets without
    ``@REV`` are read from the working tree (:func:`workspace_revision`)."""
    if not targets:
        groups = load_splits(root)
        result = OverlapResult(checked=[])
        for group in groups:
            part = overlap(root, list(group.datasets), rev, include_empty, allow_remote,
                           workspace)
            result.checked += [c for c in part.checked if c not in result.checked]
            result.overlaps += part.overlaps
            result.findings += part.findings
            result.revisions |= part.revisions
        return result
    wanted = [split_target(t, rev) for t in targets]
    if len(set(wanted)) < 2:
        raise ConfigurationError("overlap needs two or more different datasets or revisions",
                                 hint="dvc-secure overlap data/train.dvc data/test.dvc")
    several_revs = len({r for _m, r in wanted}) > 1
    verified: dict[str | None, VerifiedRevision] = {}
    files = SealedFiles(root, allow_remote=allow_remote)
    result = OverlapResult(checked=[])
    sealed: list[SealedFile] = []
    if workspace:
        if rev is not None:
            raise ConfigurationError("--workspace and --rev exclude each other",
                                     hint="name other revisions as PATH@REV")
        verified[None] = workspace_revision(root, [m for m, r in wanted if r is None])
        result.revisions[WORKSPACE] = WORKSPACE
        result.findings += verified[None].findings
    for metafile, r in wanted:
        if r not in verified:
            verified[r] = verified_revision(root, r)
            result.revisions[r or "HEAD"] = verified[r].revision
            result.findings += verified[r].findings
        checked = verified[r]
        if not checked.ok and not (workspace and r is None):
            continue
        here = WORKSPACE if workspace and r is None else (r or "HEAD")
        label = f"{metafile}@{here}" if several_revs else metafile
        result.checked.append(label)
        sc = checked.sidecars.get(metafile)
        if sc is None and workspace and r is None:
            continue  # reported as a finding by workspace_revision
        if sc is None:
            raise ConfigurationError(f"'{metafile}' has no verified sidecar at "
                                     f"{r or 'HEAD'}", hint=f"seal it: dvc-secure seal {metafile}")
        for out in sc.outputs:
            listed = files.files(out)
            if listed is None:
                raise ConfigurationError(
                    f"the sealed manifest of '{out.path}' ({metafile}) is neither in the local "
                    "cache nor readable from its remote",
                    hint=f"'dvc fetch {metafile}' or check access to remote '{out.remote}'")
            base = workspace_path(metafile, out.path)
            for rel, sha, size in listed:
                path = f"{base}/{rel}" if rel else base
                sealed.append(SealedFile(label, path, sha, size))
    result.overlaps = find_overlaps(sealed, include_empty)
    return result
