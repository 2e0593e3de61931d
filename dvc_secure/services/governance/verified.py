"""Signed inputs of the governance reports: the sidecars and keyring of a revision that
``verify`` accepts, and the sealed per-file digests of their outputs.

Every report is exactly as trustworthy as ``dvc-secure verify`` at that revision: a
revision with any finding (other than an expired member still holding a key, which the
reports show themselves) yields no sidecars, only the findings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from dvc_secure.adapters.dvc.config_file import dvc_remotes
from dvc_secure.core.governance.croissant import ManifestFiles
from dvc_secure.core.governance.inventory import Location, location_of
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.sidecar.model import SealedOutput, Sidecar
from dvc_secure.core.verification.findings import EXPIRED_MEMBER, Finding
from dvc_secure.errors import ConfigurationError, DvcSecureError, SidecarError
from dvc_secure.services.history_check import verify_history

MANIFEST_DIR = ("cache", "secure", "manifests")


@dataclass
class VerifiedRevision:
    revision: str  # full commit id
    findings: list[Finding]
    sidecars: dict[str, Sidecar] = field(default_factory=dict)  # metafile -> sidecar
    keyring: Keyring | None = None
    unsealed: list[str] = field(default_factory=list)  # metafiles without a sidecar

    @property
    def ok(self) -> bool:
        return not self.findings


def blocking(findings: list[Finding]) -> list[Finding]:
    """Findings that make a revision's records untrustworthy for a report."""
    return [f for f in findings if f.code != EXPIRED_MEMBER]


def verified_revision(root: Path, rev: str | None = None) -> VerifiedRevision:
    """Verify ``rev`` (default HEAD) with its whole history, then return its sidecars and
    keyring -- or only the findings when it does not verify."""
    spec = rev or "HEAD"
    if ".." in spec:
        raise ConfigurationError(f"--rev {spec!r}: a report is about one revision, not a range",
                                 hint="give one commit, branch or tag")
    # no verify cache: with it, a revision below a cached descendant is hidden from the walk
    # (``verify --rev HEAD~1`` after ``verify`` reports 0 revisions); reports walk it all
    report = verify_history(root, rev=spec, use_cache=False)
    reader = report.reader
    if reader is None or not report.revisions:
        raise ConfigurationError(f"revision '{spec}' has no commits to report on",
                                 hint="commit the repository first")
    commit = reader.resolve(spec)
    out = VerifiedRevision(str(commit.id), blocking(report.findings))
    if out.findings:
        return out
    snap = reader.snapshot(commit)
    out.keyring = snap.trust if isinstance(snap.trust, Keyring) else None
    for path, mf in sorted(snap.metafiles.items()):
        if mf.sidecar is not None:
            out.sidecars[path] = mf.sidecar
        elif mf.outputs:
            out.unsealed.append(path)
    return out


def remote_locations(dvc_dir: Path, names: set[str]) -> dict[str, Location]:
    """Backend type and host of the storage each secure remote wraps (from DVC's config
    files in this clone; never credentials or userinfo)."""
    remotes = dvc_remotes(dvc_dir)
    out = {}
    for name in sorted(names):
        url = remotes.url(name) or ""
        wrapped = None
        if remotes.is_secure(name):
            inner = url.split("://", 1)[1].split("/", 1)[0]
            wrapped = remotes.url(inner)
        out[name] = location_of(name, wrapped or (url if not remotes.is_secure(name) else None))
    return out


def _manifest_files(data: bytes) -> ManifestFiles:
    files = json.loads(data).get("files")
    if not isinstance(files, list):
        raise SidecarError("a sealed manifest has no file list")
    return tuple((str(f["path"]), str(f["sha256"]), int(f["size"])) for f in files)


class SealedFiles:
    """Per-file sealed digests of outputs: a file output's own sha256, a directory's from
    its sealed manifest (the local cache, else decrypted from the remote; checked against
    the digest in the sidecar either way). No dataset content is downloaded."""

    def __init__(self, root: Path, allow_remote: bool = True) -> None:
        self.dvc_dir = root / ".dvc"
        self.allow_remote = allow_remote
        self._remotes: object | None = None
        self.missing: list[str] = []  # directory outputs whose manifest could not be read

    def _local(self, digest: str) -> bytes | None:
        path = self.dvc_dir.joinpath(*MANIFEST_DIR, digest)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == digest else None

    def _remote(self, out: SealedOutput) -> bytes | None:
        if not self.allow_remote:
            return None
        from dvc_secure.adapters.dvc.remote_access import SecureRemotes
        from dvc_secure.services.sealing import manifest_rel

        if self._remotes is None:
            self._remotes = SecureRemotes(self.dvc_dir)
        assert isinstance(self._remotes, SecureRemotes)
        try:
            with self._remotes.get(out.remote).open("/" + manifest_rel(out.sha256), "rb") as f:
                data = bytes(f.read())
        except (DvcSecureError, OSError):
            return None
        return data if hashlib.sha256(data).hexdigest() == out.sha256 else None

    def manifest(self, out: SealedOutput) -> ManifestFiles | None:
        data = self._local(out.sha256) or self._remote(out)
        if data is None:
            self.missing.append(out.path)
            return None
        return _manifest_files(data)

    def files(self, out: SealedOutput) -> ManifestFiles | None:
        """(path relative to the output, sha256, size): a file output is one entry ""."""
        if not out.is_dir:
            return (("", out.sha256, out.size),)
        return self.manifest(out)
