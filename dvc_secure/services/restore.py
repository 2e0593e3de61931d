"""``dvc-secure restore TARGET --version N``: return to old data as a *new* sealed version.

Puts back the metafile of version N, fetches and checks out its data through DVC,
re-seals it as version head+1 chained to the current head, and proves end to end that the
restored content hashes (SHA-256) to what version N sealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dvc_secure.adapters.git.history import SnapshotReader, normalise_metafile, open_repository
from dvc_secure.core.sidecar.model import Sidecar, sidecar_path_for
from dvc_secure.errors import ConfigurationError, RestoreMismatchError
from dvc_secure.services.history_check import dataset_log
from dvc_secure.services.sealing import seal_metafiles


@dataclass(frozen=True)
class RestoreResult:
    metafile: str
    restored_version: int
    new_version: int


def _content(sc: Sidecar) -> dict[str, tuple[str, str]]:
    return {o.path: (o.oid, o.sha256) for o in sc.outputs}


def restore_version(root: Path, target: str, version: int) -> RestoreResult:
    metafile = normalise_metafile(target)
    if not metafile.endswith(".dvc"):
        raise ConfigurationError(f"restore works on .dvc datasets, not {metafile}",
                                 hint="for pipeline outputs, check out the old dvc.lock and run "
                                 "'dvc checkout' and 'dvc-secure seal dvc.lock'")
    entries = dataset_log(root, metafile)
    if not entries:
        raise ConfigurationError(f"{metafile} has no sealed versions in this history")
    wanted = [e for e in entries if e.sidecar.version == version]
    if not wanted:
        have = ", ".join(str(e.sidecar.version) for e in entries)
        raise ConfigurationError(f"{metafile} has no sealed version {version} (versions: {have})")
    old = wanted[0]
    head = entries[-1].sidecar
    workspace_sc = root / sidecar_path_for(metafile)
    if workspace_sc.is_file() and Sidecar.from_bytes(workspace_sc.read_bytes(), str(workspace_sc)) != head:
        raise ConfigurationError(f"{sidecar_path_for(metafile)} has uncommitted changes",
                                 hint="commit or discard them before restoring")

    reader = SnapshotReader(open_repository(root))
    blob = reader.files_at(reader.resolve(old.commit)).get(metafile)
    if blob is None:
        raise ConfigurationError(f"{metafile} is missing from commit {old.commit[:10]}")
    path = root / metafile
    previous_bytes = path.read_bytes() if path.is_file() else None
    path.write_bytes(reader.read_blob(blob))
    try:
        from dvc_secure.adapters.dvc.remote_access import pull_targets

        pull_targets(root, [str(path)], force=True)
        results = seal_metafiles(root, [metafile])
        new = Sidecar.from_bytes(workspace_sc.read_bytes(), str(workspace_sc))
        if _content(new) != _content(old.sidecar):
            raise RestoreMismatchError(
                f"restored content of {metafile} does not hash to what version {version} sealed",
                hint="run 'dvc-secure verify' and check the remote; nothing was committed",
            )
    except BaseException:
        if previous_bytes is not None:
            path.write_bytes(previous_bytes)
        if workspace_sc.is_file():
            workspace_sc.write_bytes(head.to_bytes())
        raise
    return RestoreResult(metafile, version, results[0].version)
