"""``dvc-secure migrate-names``: move a secure remote's objects from the repository-wide
scheme-1 hidden names to the remote's own scheme-2 names (docs/spec/hidden-names.md §9).

The object format binds an object to its plaintext identity, never to its storage name
(object-format.md §3), so an object keeps its ciphertext when it is renamed: no key epoch,
signature or sidecar changes. Each object is copied to a temporary name beside the
objects, read back and compared byte for byte, put in place (one rename where the storage
has one), and only then is the scheme-1 name removed. Every step can be interrupted and
the command run again: an object whose new name already holds an authentic copy only loses
its old name; a partial copy under the new name is replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dvc_secure.adapters.dvc.content_check import decrypt_checked
from dvc_secure.adapters.dvc.remote_access import open_secure_remote
from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec
from dvc_secure.adapters.dvc.transfer_streams import Discard
from dvc_secure.core.format.names import NAMES_V2
from dvc_secure.errors import ConfigurationError, DvcSecureError

TMP_DIR = "dvc-secure/migrate-tmp"  # beside the objects, in the wrapped storage; ours alone
_OWN = "dvc-secure/"  # indexes, upload records, audit, temporary files: never objects


@dataclass
class MigrationReport:
    remote: str
    dry_run: bool
    moved: int = 0  # copied to the new name, old name removed
    dropped: int = 0  # an authentic copy was already under the new name: old name removed
    remaining: int = 0  # scheme-1 names still stored (dry run: to move)
    legacy_flag: bool = True  # the pin still says scheme-1 names may remain


def _digest(fs: SecureFsspec, path: str) -> tuple[str, int] | None:
    h = hashlib.sha256()
    size = 0
    try:
        with fs.inner.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        return None
    return h.hexdigest(), size


def _authentic(fs: SecureFsspec, path: str, rel: str) -> bool:
    """Does ``path`` hold a complete object of ``rel`` that authenticates and verifies?"""
    try:
        with fs.inner.open(path, "rb") as src:
            decrypt_checked(src, Discard(), rel, fs.keys.get())
    except (DvcSecureError, OSError):
        return False
    return True


def _put_in_place(fs: SecureFsspec, tmp: str, target: str) -> None:
    fs.inner.makedirs(posixpath.dirname(target), exist_ok=True)
    if getattr(fs.inner, "protocol", None) == "local":
        os.replace(tmp, target)  # one rename(2)
    else:  # sftp: posix-rename where offered; object stores: server-side copy, then delete
        fs.inner.mv(tmp, target)


def _scheme1_names(fs: SecureFsspec) -> list[tuple[str, str]]:
    """(stored path, object) of every scheme-1 name on the remote."""
    try:
        stored = sorted(fs.storage_rel(str(p)) for p in fs.inner.find(fs.inner_root))
    except FileNotFoundError:
        return []
    found = []
    for s in stored:
        if s.startswith(_OWN):
            continue
        rel = fs.namer.reveal_v1(s)
        if rel is not None:
            found.append((fs.storage_path(s), rel))
    return found


def _move(fs: SecureFsspec, old: str, rel: str) -> bool:
    """Move one object; True if copied, False if only its old name had to go."""
    new = fs.write_path(rel)
    source = _digest(fs, old)
    if source is None:
        return False  # removed meanwhile (gc): nothing to move
    present = _digest(fs, new)
    if present is not None and (present == source or _authentic(fs, new, rel)):
        fs.inner.rm_file(old)
        return False
    tmp = fs.storage_path(f"{TMP_DIR}/{os.urandom(12).hex()}")
    try:
        fs.inner.makedirs(fs.storage_path(TMP_DIR), exist_ok=True)
        with fs.inner.open(old, "rb") as src:
            fs.inner.upload_fobj(src, tmp)
        if _digest(fs, tmp) != source:
            raise DvcSecureError(
                f"the copy of {fs.storage_rel(old)} differs from the original after upload; "
                "nothing was renamed", hint="check the storage, then run the command again")
        _put_in_place(fs, tmp, new)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.inner.rm_file(tmp)
        raise
    if _digest(fs, new) != source:
        raise DvcSecureError(f"object {fs.storage_rel(new)} does not hold the copied bytes; "
                             "the old name was kept", hint="run the command again")
    fs.inner.rm_file(old)
    return True


def migrate_names(dvc_dir: Path, remote: str, *, dry_run: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> MigrationReport:
    """Rename every scheme-1 object of secure remote ``remote`` to its scheme-2 name."""
    fs = open_secure_remote(dvc_dir, remote)
    if not fs.hide_names:
        raise ConfigurationError(f"secure remote '{remote}' has hide_names = false: its "
                                 "objects have no hidden names to migrate")
    naming = fs.namer.naming
    if naming.scheme != NAMES_V2:
        raise ConfigurationError(
            f"the signed remote policy gives secure remote '{remote}' no name id of its own "
            "(hidden-name scheme 1): there is nothing to migrate to yet",
            hint="an admin runs 'dvc-secure remote-policy --update' (it assigns each secure "
            "remote its name id), commits the keyring, then 'dvc-secure migrate-names -r "
            f"{remote}'")
    report = MigrationReport(remote=remote, dry_run=dry_run, legacy_flag=naming.legacy)
    if not naming.legacy:
        return report  # the pin says no scheme-1 name can be there, and none is read
    todo = _scheme1_names(fs)
    if dry_run:
        report.remaining = len(todo)
        return report
    for i, (old, rel) in enumerate(todo, 1):
        if _move(fs, old, rel):
            report.moved += 1
        else:
            report.dropped += 1
        if progress is not None:
            progress(i, len(todo))
    with contextlib.suppress(FileNotFoundError):
        for leftover in list(fs.inner.find(fs.storage_path(TMP_DIR))):
            with contextlib.suppress(FileNotFoundError):
                fs.inner.rm_file(leftover)
    report.remaining = len(_scheme1_names(fs))
    return report
