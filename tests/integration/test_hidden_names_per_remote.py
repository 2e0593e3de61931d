"""Hidden names differ between two secure remotes of one repository, and repositories whose
remotes still use the repository-wide names migrate (docs/spec/hidden-names.md §1, §9),
through real dvc, git and dvc-secure commands on two local-directory storages."""

from __future__ import annotations

import json
from pathlib import Path

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from tests.conftest import DVC_SECURE, SecureRepo, run
from tests.integration.secure_helpers import (
    TRACKED,
    dataset_files,
    object_ids,
    object_rel,
    storage_path,
    wipe_cache_and_workspace,
    workspace_files,
)


def _object_names(storage: Path) -> set[str]:
    """Stored names of objects (not dvc-secure's own indexes and records)."""
    return {p.relative_to(storage).as_posix() for p in storage.rglob("*")
            if p.is_file() and not p.relative_to(storage).as_posix().startswith("dvc-secure/")}


def _add_backup(repo: SecureRepo, backup: Path) -> None:
    repo.dvc("remote", "add", "backup-store", str(backup))
    repo.secure("init", "--remote", "backup-store", "--name", "backup", "--no-default")


def _add_dataset(repo: SecureRepo) -> None:
    for rel, content in dataset_files().items():
        path = repo.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    repo.dvc("add", "-q", *TRACKED)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "dataset")


def _pulls_from_each(repo: SecureRepo, *remotes: str) -> None:
    want = dataset_files()
    for remote in remotes:
        wipe_cache_and_workspace(repo)
        repo.dvc("pull", "-q", "-r", remote)
        assert workspace_files(repo) == want, remote


def _verify_keyless(repo: SecureRepo, tmp_path: Path, *args: str) -> None:
    """CI: storage read access, no identity (the name secret is not available)."""
    env = dict(repo.env, **{ENV_IDENTITY_FILE: str(tmp_path / "no-identity-here")})
    run([*DVC_SECURE, "verify", "--remote", *args], repo.root, env)


def _names_pin(repo: SecureRepo) -> dict[str, dict[str, object]]:
    ring = json.loads((repo.root / ".dvc" / "secure" / "keyring.json").read_text())
    return {p["name"]: p.get("names") for p in ring["signed"]["remotes"]["secure"]}


def test_attack_correlate_objects_across_two_secure_remotes(make_secure_repo,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    repo = make_secure_repo()
    backup = tmp_path / "backup-storage"
    _add_backup(repo, backup)
    repo.secure("remote-policy", "--update")  # an admin pins the backup (docs/backup.md)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "backup remote")
    pins = _names_pin(repo)
    assert pins["vault"]["id"] != pins["backup"]["id"]  # type: ignore[index]
    assert pins["vault"]["scheme"] == pins["backup"]["scheme"] == 2  # type: ignore[index]
    assert not pins["backup"]["legacy"]  # type: ignore[index]  # new to a pinned policy
    _add_dataset(repo)
    repo.dvc("push", "-q")
    repo.dvc("push", "-q", "-r", "backup")
    on_vault, on_backup = _object_names(repo.storage), _object_names(backup)
    assert len(on_vault) == len(on_backup) == len(set(object_ids(repo).values()))
    assert on_vault.isdisjoint(on_backup)  # the same objects, under unrelated names
    oid = object_ids(repo)["model.bin"]
    assert storage_path(repo, oid).is_file()
    assert storage_path(repo, oid, wraps="backup-store", storage=backup).is_file()
    _pulls_from_each(repo, "backup", "vault")
    # the sealed index lists vault's names: with the name secret, the backup is proved too
    repo.secure("seal")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "seal")
    repo.secure("verify", "--remote")
    repo.secure("repair", "-r", "backup")  # (+ a signed record of the backup's names)
    repo.secure("verify", "--remote", "-r", "backup")
    _verify_keyless(repo, tmp_path, "-r", "backup")
    assert repo.dvc("status", "-c", "-r", "backup").returncode == 0
    # a stored object copied from one remote to the other under its name there is rejected
    target = storage_path(repo, oid, wraps="backup-store", storage=backup)
    target.write_bytes(storage_path(repo, object_ids(repo)["data/a.txt"]).read_bytes())
    wipe_cache_and_workspace(repo)
    assert repo.dvc("pull", "-q", "-r", "backup", check=False).returncode != 0


def test_scheme1_remotes_keep_working_then_migrate(make_secure_repo,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    repo = make_secure_repo()
    # a repository from before name ids: no remote pin, so both remotes use scheme 1
    repo.secure("remote-policy", "--unpin")
    backup = tmp_path / "backup-storage"
    _add_backup(repo, backup)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "old-style remotes")
    _add_dataset(repo)
    pushed = repo.dvc("push", "-r", "vault")
    assert "scheme 1" in pushed.stderr + pushed.stdout  # never silently
    repo.dvc("push", "-q", "-r", "backup")
    assert _object_names(repo.storage) == _object_names(backup)  # an observer correlates
    # an object nobody uses any more, stored under its scheme-1 name (gc -c removes it below)
    (repo.root / "junk.txt").write_bytes(b"unused after this commit\n")
    repo.dvc("add", "-q", "junk.txt")
    repo.dvc("push", "-q", "-r", "vault", "junk.txt")
    junk = storage_path(repo, object_ids_of(repo, "junk.txt"))  # (scheme 1: no name ids yet)
    assert junk.is_file()
    (repo.root / "junk.txt.dvc").unlink()
    (repo.root / "junk.txt").unlink()
    repo.secure("seal")  # (also stores the directory manifest on vault)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "seal")
    before, before_backup = _object_names(repo.storage), _object_names(backup)

    # an admin gives each remote its own names: old names still read, new ones written
    repo.secure("remote-policy", "--update")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "name ids")
    pins = _names_pin(repo)
    assert pins["vault"]["legacy"] and pins["backup"]["legacy"]  # type: ignore[index]
    doctor = repo.secure("doctor", check=False)
    assert "dvc-secure migrate-names -r backup" in doctor.stdout + doctor.stderr
    _pulls_from_each(repo, "vault", "backup")
    repo.secure("verify", "--remote")
    repo.dvc("gc", "-q", "-c", "-w", "-f", "-r", "vault")  # finds and removes scheme-1 names
    assert not junk.exists() and _object_names(repo.storage) == before - {
        junk.relative_to(repo.storage).as_posix()}
    before -= {junk.relative_to(repo.storage).as_posix()}
    (repo.root / "extra.txt").write_bytes(b"pushed after the name ids were pinned\n")
    repo.dvc("add", "-q", "extra.txt")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "extra")
    repo.dvc("push", "-q", "-r", "vault")
    repo.dvc("push", "-q", "-r", "backup")
    extra = object_rel(object_ids_of(repo, "extra.txt"))
    new_vault = _object_names(repo.storage) - before
    new_backup = _object_names(backup) - before_backup
    assert len(new_vault) == len(new_backup) == 1 and new_vault.isdisjoint(new_backup), extra
    repo.secure("seal")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "seal extra")

    # migrate: resumable, then no name is shared and everything still pulls and verifies
    dry = repo.secure("migrate-names", "-r", "vault", "--dry-run", check=False)
    assert dry.returncode == 1 and f" {len(before)} object(s)" in dry.stdout
    repo.secure("migrate-names", "-r", "vault")
    repo.secure("migrate-names")  # again: nothing left, nothing changed
    repo.secure("migrate-names", "-r", "backup")
    assert repo.secure("migrate-names", "-r", "backup", "--dry-run").returncode == 0
    assert _object_names(repo.storage).isdisjoint(_object_names(backup))
    assert _object_names(repo.storage).isdisjoint(before)
    assert _object_names(backup).isdisjoint(before_backup)
    _pulls_from_each(repo, "vault", "backup")
    repo.secure("verify", "--remote")  # the sealed index lists the old names
    repo.secure("repair", "-r", "vault")  # records the new names for keyless checks
    _verify_keyless(repo, tmp_path)
    repo.secure("repair", "-r", "backup")
    repo.secure("verify", "--remote", "-r", "backup")
    _verify_keyless(repo, tmp_path, "-r", "backup")

    # the admin stops reading scheme-1 names
    repo.secure("remote-policy", "--update", "--names-migrated", "vault",
                "--names-migrated", "backup")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "names migrated")
    assert not any(p["legacy"] for p in _names_pin(repo).values())  # type: ignore[index]
    _pulls_from_each(repo, "vault", "backup")
    repo.secure("verify", "--remote")
    assert repo.dvc("status", "-c", "-r", "vault").returncode == 0


def object_ids_of(repo: SecureRepo, rel: str) -> str:
    import yaml

    return str(yaml.safe_load((repo.root / f"{rel}.dvc").read_text())["outs"][0]["md5"])
