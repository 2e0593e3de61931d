"""Engine snapshots from blob ids: parsing memoised by blob id, independent of how the
blobs are read (pygit2 for history walks, ``git cat-file`` for the pre-commit hook)."""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Callable, Collection
from dataclasses import dataclass

from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.sidecar.metafile import is_metafile, parse_outputs
from dvc_secure.core.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.core.verification.engine import MetafileState, Snapshot
from dvc_secure.errors import DvcSecureError

KEYRING_PATH = ".dvc/secure/keyring.json"


@dataclass(frozen=True)
class _Parsed:
    value: object | None
    error: str | None


class SnapshotBuilder:
    """Builds engine snapshots from ``path -> blob id`` maps."""

    def __init__(self, read_blob: Callable[[str], bytes] | None = None,
                 verified_keyrings: Collection[str] = ()) -> None:
        self._reader = read_blob
        # keyring blobs whose admin signatures verified before (a cache in the git dir,
        # written only after a successful check): parsed without checking them again
        self.verified_keyrings = set(verified_keyrings)
        self.newly_verified_keyrings: set[str] = set()
        self._blobs: dict[tuple[str, str], _Parsed] = {}
        self._states: dict[tuple[str, str, str | None], MetafileState] = {}

    def read_blob(self, blob_id: str) -> bytes:
        if self._reader is None:
            raise NotImplementedError("pass read_blob, or override this method")
        return self._reader(blob_id)

    def parse_blob(self, kind: str, blob_id: str, path: str) -> _Parsed:
        key = (kind, blob_id if kind != "sidecar" else f"{blob_id}:{path}")
        hit = self._blobs.get(key)
        if hit is not None:
            return hit
        data = self.read_blob(blob_id)
        try:
            value: object
            if kind == "keyring":
                ring = Keyring.from_json(data.decode("utf-8"))
                if blob_id not in self.verified_keyrings:
                    ring.verify_signatures()
                    self.newly_verified_keyrings.add(blob_id)
                value = ring
            elif kind == "sidecar":
                value = Sidecar.from_bytes(data, path)
            else:
                value = parse_outputs(data, path)
            parsed = _Parsed(value, None)
        except (DvcSecureError, UnicodeDecodeError) as exc:
            parsed = _Parsed(None, getattr(exc, "message", str(exc)))
        self._blobs[key] = parsed
        return parsed

    def snapshot_from_files(self, rev: str, parents: tuple[str, ...], files: dict[str, str],
                            only: Collection[str] | None = None,
                            committed_on: dt.date | None = None) -> Snapshot:
        """``only``: the metafiles to include (default: all); orphans are found among all.
        ``committed_on``: the day the commit claims (None: not committed yet)."""
        trust = None
        trust_error = None  # no keyring file at all
        if KEYRING_PATH in files:
            kr = self.parse_blob("keyring", files[KEYRING_PATH], KEYRING_PATH)
            trust = kr.value if isinstance(kr.value, Keyring) else None
            trust_error = None if trust is not None else kr.error or "unreadable"
        metafiles: dict[str, MetafileState] = {}
        for path, blob in files.items():
            if path.endswith(SIDECAR_SUFFIX) or not is_metafile(path):
                continue
            if only is not None and path not in only:
                continue
            sc_blob = files.get(path + SIDECAR_SUFFIX)
            # one object per (metafile, sidecar) content: the engine memoises by identity
            key = (path, blob, sc_blob)
            cached = self._states.get(key)
            if cached is not None:
                metafiles[path] = cached
                continue
            outs = self.parse_blob("metafile", blob, path)
            declared = outs.value if isinstance(outs.value, dict) else {}
            sc_path = path + SIDECAR_SUFFIX
            sidecar = None
            sidecar_error = None
            if sc_path in files:
                parsed = self.parse_blob("sidecar", files[sc_path], sc_path)
                sidecar = parsed.value if isinstance(parsed.value, Sidecar) else None
                sidecar_error = parsed.error
            elif outs.error:
                sidecar_error = f"metafile unreadable: {outs.error}"
            metafiles[path] = self._states[key] = MetafileState(
                path=path,
                outputs={p: o.oid for p, o in declared.items()},
                sidecar=sidecar,
                sidecar_error=sidecar_error,
                remotes={p: o.remote for p, o in declared.items()},
            )
        orphans = tuple(sorted(
            p for p in files
            if p.endswith(SIDECAR_SUFFIX) and p[: -len(SIDECAR_SUFFIX)] not in files
        ))
        return Snapshot(rev=rev, parents=parents, metafiles=metafiles, trust=trust,  # type: ignore[arg-type]
                        trust_error=trust_error, orphan_sidecars=orphans, committed_on=committed_on,
                        holds_secure_files=KEYRING_PATH in files or any(
                            p.endswith(SIDECAR_SUFFIX) for p in files))


def normalise_metafile(target: str) -> str:
    """Accept ``data``, ``data.dvc`` or ``data.dvc.seal``; return the metafile path."""
    t = posixpath.normpath(target.replace("\\", "/")).lstrip("./") or target
    if t.endswith(SIDECAR_SUFFIX):
        t = t[: -len(SIDECAR_SUFFIX)]
    if not is_metafile(t):
        t += ".dvc"
    return t
