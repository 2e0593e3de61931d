"""What the current revisions need: sealed outputs at HEAD and every local branch tip, and
the remote objects behind them (used by re-encryption; reusable by erasure and inventory).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pygit2

from dvc_secure.adapters.dvc.remote_access import SecureRemotes
from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec
from dvc_secure.adapters.git.history import SnapshotReader, open_repository
from dvc_secure.core.sidecar.model import SIDECAR_SUFFIX, SealedOutput, Sidecar
from dvc_secure.errors import ReencryptionError
from dvc_secure.services.sealing import manifest_rel, object_rel


@dataclass(frozen=True)
class Target:
    remote: str
    rel: str  # object identity: path relative to the secure remote root
    plaintext_sha256: str | None  # sealed digest of the content, when the sidecar has one


def current_tips(repo: pygit2.Repository) -> list[pygit2.Commit]:
    """HEAD and the tip of every local branch (each commit once)."""
    tips: dict[str, pygit2.Commit] = {}
    names = ["HEAD", *(n for n in repo.references if n.startswith("refs/heads/"))]
    for name in names:
        try:
            commit = repo.revparse_single(name).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            continue  # unborn HEAD or a dangling ref
        tips.setdefault(str(commit.id), commit)
    return list(tips.values())


def current_sidecars(root: Path) -> list[Sidecar]:
    """Every distinct sidecar committed at HEAD or a local branch tip."""
    repo = open_repository(root)
    reader = SnapshotReader(repo)
    found: dict[str, Sidecar] = {}
    for tip in current_tips(repo):
        for path, blob in sorted(reader.files_at(tip).items()):
            if not path.endswith(SIDECAR_SUFFIX):
                continue
            parsed = reader.parse_blob("sidecar", blob, path)
            if isinstance(parsed.value, Sidecar):
                found.setdefault(parsed.value.digest, parsed.value)
    return list(found.values())


def read_manifest(dvc_dir: Path, fs: SecureFsspec, out: SealedOutput) -> list[dict[str, object]]:
    """The sealed manifest of a directory output (local copy, else decrypted from the
    remote), checked against its sealed digest."""
    local = dvc_dir / "cache" / "secure" / "manifests" / out.sha256
    data = local.read_bytes() if local.is_file() else None
    if data is None or hashlib.sha256(data).hexdigest() != out.sha256:
        with fs.open("/" + manifest_rel(out.sha256), "rb") as f:
            data = f.read()  # a manifest: one JSON line per file, not object content
    if hashlib.sha256(data).hexdigest() != out.sha256:
        raise ReencryptionError(f"the manifest of {out.path} does not match its sealed digest",
                                hint="run 'dvc-secure verify --deep' to find the damage")
    files = json.loads(data).get("files")
    return files if isinstance(files, list) else []


def targets_of(dvc_dir: Path, remotes: SecureRemotes, sidecars: list[Sidecar]) -> list[Target]:
    found: dict[tuple[str, str], Target] = {}

    def add(remote: str, rel: str, sha: str | None) -> None:
        prev = found.get((remote, rel))
        if prev is None or prev.plaintext_sha256 is None:
            found[(remote, rel)] = Target(remote, rel, sha)

    for sc in sidecars:
        for out in sc.outputs:
            if not out.is_dir:
                add(out.remote, object_rel(out.oid), out.sha256)
                continue
            add(out.remote, object_rel(out.oid), None)
            add(out.remote, manifest_rel(out.sha256), out.sha256)
            for entry in read_manifest(dvc_dir, remotes.get(out.remote), out):
                add(out.remote, object_rel(str(entry["md5"])), str(entry["sha256"]))
    return sorted(found.values(), key=lambda t: (t.remote, t.rel))


def pinned_epochs(sidecars: list[Sidecar]) -> dict[str, int]:
    """remote_index digest -> lowest key epoch an output pinned with it was sealed under."""
    out: dict[str, int] = {}
    for sc in sidecars:
        for o in sc.outputs:
            if o.remote_index is not None:
                out[o.remote_index] = min(o.key_epoch, out.get(o.remote_index, o.key_epoch))
    return out
