"""dvc-secure's git hooks through real `git commit` and `git push` (to a bare repository)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dvc_secure.core.sidecar.model import Sidecar
from tests.conftest import DVC_SECURE, SecureRepo, run

BIN = str(Path(sys.executable).parent)


def _with_path(repo: SecureRepo) -> SecureRepo:
    """DVC's own hooks call `dvc` from PATH: use this environment's."""
    repo.env["PATH"] = BIN + os.pathsep + repo.env.get("PATH", "")
    return repo


def _local_hooks_path(repo: SecureRepo) -> str | None:
    proc = repo.git("config", "--local", "--get", "core.hooksPath", check=False)
    return proc.stdout.rstrip("\n") if proc.returncode == 0 else None


def _write_dataset(repo: SecureRepo, content: str, name: str = "data") -> None:
    d = repo.root / name
    d.mkdir(exist_ok=True)
    (d / "a.txt").write_text(content)
    (d / "b.txt").write_text(content * 2)
    repo.dvc("add", "-q", name)


def _commit(repo: SecureRepo, message: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    repo.git("add", "-A")
    return repo.git("commit", "-q", "-m", message, check=check)


def _dataset_commit(repo: SecureRepo, content: str, name: str = "data") -> None:
    _write_dataset(repo, content, name)
    repo.dvc("push", "-q")
    proc = _commit(repo, f"{name} {content}")
    assert "sealed and staged" in proc.stderr, proc.stderr


def _committed(repo: SecureRepo, rev: str = "HEAD") -> set[str]:
    out = repo.git("show", "--name-only", "--format=", rev).stdout
    return set(out.split())


@pytest.fixture
def hooked(make_secure_repo) -> SecureRepo:  # type: ignore[no-untyped-def]
    repo = _with_path(make_secure_repo())
    repo.secure("install")
    return repo


# --- install / uninstall ------------------------------------------------------------------


def test_install_uninstall_round_trip_unset(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    assert _local_hooks_path(repo) is None
    repo.secure("install")
    ours = _local_hooks_path(repo)
    assert ours is not None and Path(ours).is_dir()
    repo.secure("install")  # idempotent
    assert _local_hooks_path(repo) == ours
    assert sorted(os.listdir(repo.root / ".git" / "hooks")) == sorted(
        os.listdir(repo.root / ".git" / "hooks"))  # untouched below
    repo.secure("uninstall")
    assert _local_hooks_path(repo) is None
    assert not Path(ours).exists()
    assert "not installed" in repo.secure("uninstall").stderr


def test_preset_hooks_path_chained_and_restored(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = _with_path(make_secure_repo())
    mine = repo.root / "my-hooks"
    mine.mkdir()
    log = repo.root.parent / "user-hook.log"
    hook = mine / "pre-commit"
    hook.write_text(f"#!/bin/sh\necho user-pre-commit >> '{log}'\n")
    hook.chmod(0o755)
    repo.git("config", "core.hooksPath", "my-hooks")
    repo.secure("install")
    repo.secure("install")
    assert hook.read_text().startswith("#!/bin/sh\necho user-pre-commit")  # never clobbered
    _dataset_commit(repo, "v1")  # our check sealed it ...
    assert log.read_text() == "user-pre-commit\n"  # ... and the user's hook still ran
    assert "data.dvc.seal" in _committed(repo)
    repo.secure("uninstall")
    assert _local_hooks_path(repo) == "my-hooks"
    assert hook.is_file()


def test_existing_user_hook_never_clobbered_and_still_runs(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = _with_path(make_secure_repo())
    log = repo.root.parent / "user-hook.log"
    hook = repo.root / ".git" / "hooks" / "pre-commit"
    text = f"#!/bin/sh\necho user >> '{log}'\n"
    hook.write_text(text)
    hook.chmod(0o755)
    repo.secure("install")
    (repo.root / "notes.txt").write_text("hello")
    _commit(repo, "notes")
    assert hook.read_text() == text
    assert log.read_text() == "user\n"
    repo.secure("uninstall")
    assert hook.read_text() == text


@pytest.mark.parametrize("dvc_first", [True, False], ids=["dvc-install-first", "dvc-install-after"])
def test_chains_with_dvc_install(make_secure_repo, dvc_first: bool) -> None:  # type: ignore[no-untyped-def]
    repo = _with_path(make_secure_repo())
    if dvc_first:
        repo.dvc("install")
        repo.secure("install")
    else:
        repo.secure("install")
        repo.dvc("install")  # DVC writes .git/hooks and sees no conflict there
    assert "dvc git-hook pre-commit" in (repo.root / ".git" / "hooks" / "pre-commit").read_text()
    _write_dataset(repo, "v1")
    repo.dvc("push", "-q")
    repo.git("add", "-A")
    proc = repo.git("commit", "-m", "v1")
    output = proc.stdout + proc.stderr
    assert "sealed and staged data.dvc.seal" in output  # our check
    assert "up to date" in output  # DVC's pre-commit hook: `dvc status`
    assert "data.dvc.seal" in _committed(repo)
    # DVC's post-checkout hook keeps running through our pass-through hook
    assert (repo.root / ".git" / "dvc-secure" / "hooks" / "post-checkout").is_file()


# --- pre-commit ---------------------------------------------------------------------------


def test_pre_commit_seals_changed_dataset(hooked: SecureRepo) -> None:
    _dataset_commit(hooked, "v1")
    assert {"data.dvc", "data.dvc.seal"} <= _committed(hooked)
    _dataset_commit(hooked, "v2")
    assert {"data.dvc", "data.dvc.seal"} <= _committed(hooked)
    assert hooked.secure("verify", "--all-revisions").returncode == 0
    log = hooked.secure("log", "data").stdout.splitlines()[1:]
    assert [line.split()[0] for line in log] == ["2", "1"]
    assert hooked.git("status", "--porcelain").stdout == ""


def test_pre_commit_blocks_unpushed_data(hooked: SecureRepo) -> None:
    _write_dataset(hooked, "v1")
    proc = _commit(hooked, "v1", check=False)
    assert proc.returncode == 1
    assert "dvc push data.dvc" in proc.stderr
    assert not (hooked.root / "data.dvc.seal").exists()
    hooked.dvc("push", "-q")
    proc = hooked.git("commit", "-q", "-m", "v1")
    assert "data.dvc.seal" in _committed(hooked)


def test_pre_commit_blocks_partially_staged_metafile(hooked: SecureRepo) -> None:
    _write_dataset(hooked, "v1")
    hooked.dvc("push", "-q")
    hooked.git("add", "-A")
    _write_dataset(hooked, "v1 changed again")  # data.dvc changed after staging
    proc = hooked.git("commit", "-q", "-m", "v1", check=False)
    assert proc.returncode == 1 and "git add data.dvc" in proc.stderr


def test_pre_commit_blocks_identity_file(hooked: SecureRepo) -> None:
    shutil.copy(hooked.identity_file, hooked.root / "me.txt")
    proc = _commit(hooked, "oops", check=False)
    assert proc.returncode == 1
    assert "identity" in proc.stderr and "git rm --cached -q me.txt" in proc.stderr
    key_line = next(ln for ln in hooked.identity_file.read_text().splitlines()
                    if ln.startswith("AGE-SECRET-KEY-1"))
    hooked.git("rm", "-q", "--cached", "me.txt")
    (hooked.root / "me.txt").unlink()
    (hooked.root / "settings.py").write_text(f"KEY = '{key_line.lower()}'\n")
    proc = _commit(hooked, "oops again", check=False)
    assert proc.returncode == 1
    assert "secret key material" in proc.stderr and "git rm --cached -q settings.py" in proc.stderr


def test_pre_commit_blocks_large_plaintext_file(hooked: SecureRepo) -> None:
    hooked.git("config", "dvc-secure.maxFileSize", "1k")
    (hooked.root / "big.csv").write_bytes(b"x" * 2048)
    proc = _commit(hooked, "big", check=False)
    assert proc.returncode == 1
    assert "dvc add big.csv" in proc.stderr
    (hooked.root / "big.csv").write_bytes(b"x" * 512)
    _commit(hooked, "small is fine")


def test_pre_commit_blocks_confidential_dataset_on_plain_remote(hooked: SecureRepo) -> None:
    _dataset_commit(hooked, "v1")  # sealed with the default classification: confidential
    plain = hooked.root.parent / "plain-storage"
    hooked.dvc("remote", "add", "plain", str(plain))
    hooked.dvc("remote", "default", "plain")
    proc = _commit(hooked, "switch remote", check=False)
    assert proc.returncode == 1
    assert "classified confidential" in proc.stderr
    assert "dvc remote default vault" in proc.stderr


def test_pre_commit_blocks_rollback_replay(hooked: SecureRepo) -> None:
    _dataset_commit(hooked, "v1")
    _dataset_commit(hooked, "v2")
    hooked.git("checkout", "HEAD~1", "--", "data.dvc", "data.dvc.seal")
    proc = hooked.git("commit", "-q", "-m", "back to v1", check=False)
    assert proc.returncode == 1
    assert "version 1" in proc.stderr and "dvc-secure restore data --version 1" in proc.stderr


def test_hooks_tolerate_repo_without_commits(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    env = dict(isolated_env, PATH=BIN + os.pathsep + isolated_env.get("PATH", ""))
    env["DVC_SECURE_IDENTITY_FILE"] = str(tmp_path / "id.txt")
    root = tmp_path / "fresh"
    root.mkdir()
    run(["git", "init", "-q"], root, env)
    run([*DVC_SECURE, "install"], root, env)
    run([sys.executable, "-m", "dvc", "init", "-q"], root, env)
    run([*DVC_SECURE, "keygen"], root, env)
    run([sys.executable, "-m", "dvc", "remote", "add", "storage", str(tmp_path / "s")], root, env)
    run([*DVC_SECURE, "init", "--remote", "storage"], root, env)
    (root / "data").mkdir()
    (root / "data" / "x.txt").write_text("x")
    run([sys.executable, "-m", "dvc", "add", "-q", "data"], root, env)
    run([sys.executable, "-m", "dvc", "push", "-q"], root, env)
    run(["git", "add", "-A"], root, env)
    proc = run(["git", "commit", "-q", "-m", "first"], root, env)
    assert "sealed and staged data.dvc.seal" in proc.stderr
    assert run([*DVC_SECURE, "verify"], root, env).returncode == 0


# --- sealing from the push journal (the fast path) -------------------------------------------


def _file_dataset(repo: SecureRepo, content: str, name: str = "table.csv") -> None:
    (repo.root / name).write_text(content)
    repo.dvc("add", "-q", name)
    repo.dvc("push", "-q")


def _imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _remote_index(repo: SecureRepo, metafile: str) -> str:
    sc = Sidecar.from_bytes((repo.root / (metafile + ".seal")).read_bytes(), metafile)
    digest = sc.outputs[0].remote_index
    assert digest is not None
    return digest


def test_pre_commit_seals_from_push_journal_without_importing_dvc(hooked: SecureRepo) -> None:
    _file_dataset(hooked, "id\n1\n")
    assert "sealed and staged" in _commit(hooked, "v1").stderr  # opens the remote once
    _file_dataset(hooked, "id\n2\n")
    hooked.git("add", "table.csv.dvc")
    proc = run([sys.executable, "-X", "importtime", *DVC_SECURE[1:], "hook", "pre-commit"],
               hooked.root, hooked.env)
    assert "sealed and staged table.csv.dvc.seal" in proc.stderr
    heavy = {m for m in _imported(proc.stderr)
             if m.split(".")[0] in ("dvc", "dvc_objects", "dvc_data", "fsspec")}
    assert heavy == set(), sorted(heavy)[:5]
    assert {"dvc_secure.services.hook_checks", "dvc_secure.services.sealing"} <= _imported(proc.stderr)
    hooked.git("commit", "-q", "-m", "v2")
    assert "table.csv.dvc.seal" in _committed(hooked)
    assert hooked.secure("verify").returncode == 0



# --- the incremental staged check (only changed datasets re-checked) ------------------------


def _hook_imports(repo: SecureRepo) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    proc = run([sys.executable, "-X", "importtime", "-m", "dvc_secure.cli.hooks", "pre-commit"],
               repo.root, repo.env, check=False)
    return proc, _imported(proc.stderr)


def test_pre_commit_fast_path_needs_no_pygit2_yaml_or_crypto(hooked: SecureRepo) -> None:
    _file_dataset(hooked, "id\n1\n", "a.csv")
    _file_dataset(hooked, "id\n1\n", "b.csv")
    _commit(hooked, "two datasets")
    (hooked.root / "README").write_text("notes\n")
    hooked.git("add", "README")
    proc, mods = _hook_imports(hooked)  # nothing relevant changed: nothing to parse or verify
    assert proc.returncode == 0, proc.stderr
    assert not {m for m in mods if m.split(".")[0] in ("pygit2", "yaml", "cryptography", "dvc")}
    hooked.git("commit", "-q", "-m", "readme")
    _file_dataset(hooked, "id\n2\n", "a.csv")
    hooked.git("add", "a.csv.dvc")
    proc, mods = _hook_imports(hooked)  # seals a.csv; b.csv is not re-checked
    assert "sealed and staged a.csv.dvc.seal" in proc.stderr
    assert "pygit2" not in mods
    hooked.git("commit", "-q", "-m", "a v2")
    assert hooked.secure("verify", "--all-revisions").returncode == 0


def test_tampered_sidecar_committed_past_the_hooks_blocks_next_commit(hooked: SecureRepo) -> None:
    _file_dataset(hooked, "id\n1\n", "a.csv")
    _file_dataset(hooked, "id\n1\n", "b.csv")
    _commit(hooked, "two datasets")  # both checked and recorded as passed
    seal = hooked.root / "b.csv.dvc.seal"
    seal.write_text(seal.read_text().replace('"owner": ""', '"owner": "mallory"'))
    hooked.env["DVC_SECURE_SKIP_HOOKS"] = "1"  # slips past the hooks (e.g. made elsewhere)
    hooked.git("commit", "-q", "-am", "hand edit")
    del hooked.env["DVC_SECURE_SKIP_HOOKS"]
    (hooked.root / "README").write_text("notes\n")
    proc = _commit(hooked, "unrelated", check=False)  # b.csv's new bytes were never checked
    assert proc.returncode == 1
    assert "b.csv.dvc" in proc.stderr and "does not verify" in proc.stderr


def test_edited_sidecar_is_not_covered_by_a_check_record(hooked: SecureRepo) -> None:
    import json

    _file_dataset(hooked, "id\n1\n", "a.csv")
    _commit(hooked, "v1")
    record = hooked.root / ".git" / "dvc-secure" / "checked.json"
    doc = json.loads(record.read_text())
    assert doc["entries"], "passed checks are recorded"
    # the edited sidecar's blob never passed a check, so no record covers it
    seal = hooked.root / "a.csv.dvc.seal"
    seal.write_text(seal.read_text().replace('"purpose": ""', '"purpose": "x"'))
    hooked.git("add", "a.csv.dvc.seal")
    proc = hooked.git("commit", "-q", "-m", "edited", check=False)
    assert proc.returncode == 1 and "does not verify" in proc.stderr
    assert len(json.loads(record.read_text())["entries"]) == len(doc["entries"])


def test_pre_push_uploads_remote_index_pinned_at_commit(hooked: SecureRepo) -> None:
    _bare_remote(hooked)
    _file_dataset(hooked, "id\n1\n")
    _commit(hooked, "v1")
    _file_dataset(hooked, "id\n2\n")
    assert "sealed and staged" in _commit(hooked, "v2").stderr  # pinned from the journal
    digest = _remote_index(hooked, "table.csv.dvc")
    on_storage = hooked.storage / "dvc-secure" / "index" / f"{digest}.json"
    pending = hooked.root / ".dvc" / "cache" / "secure" / "indexes" / digest
    assert not on_storage.exists() and pending.is_file()  # deferred: the commit made no upload
    hooked.git("push", "-q", "-u", "origin", "HEAD")
    assert on_storage.is_file() and not pending.exists()
    assert hooked.secure("verify", "--remote", "--all-revisions").returncode == 0


def test_journal_binding_not_used_after_storage_url_changed(hooked: SecureRepo) -> None:
    _file_dataset(hooked, "id\n1\n")
    _commit(hooked, "v1")  # records the remote's identity in the push journal
    _file_dataset(hooked, "id\n2\n")  # pushed to the old storage ...
    hooked.dvc("remote", "modify", "storage", "url", str(hooked.root.parent / "new-storage"))
    hooked.secure("remote-policy", "--update")  # a deliberate move, pinned by the admin
    proc = _commit(hooked, "v2", check=False)  # ... so the remote now named has none of it
    assert proc.returncode == 1
    assert "dvc push table.csv.dvc" in proc.stderr
    # no remote index was published there (the admin's audit event may have been)
    assert not (hooked.root.parent / "new-storage" / "dvc-secure" / "index").exists()


# --- pre-push -----------------------------------------------------------------------------


def _bare_remote(repo: SecureRepo) -> Path:
    bare = repo.root.parent / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], repo.root.parent, repo.env)
    repo.git("remote", "add", "origin", str(bare))
    return bare


def test_pre_push_pushes_missing_objects(hooked: SecureRepo) -> None:
    _bare_remote(hooked)
    hooked.git("push", "-q", "-u", "origin", "HEAD")
    # sealed offline: the objects are only in the local cache when the commit is made
    _write_dataset(hooked, "v1")
    hooked.secure("seal", "--offline", "data")
    _commit(hooked, "v1 (offline seal)")
    assert hooked.stored_objects() == []
    proc = hooked.git("push", "origin", "HEAD")
    assert "dvc push" in proc.stderr
    assert hooked.stored_objects() != []
    status = hooked.dvc("status", "-c").stdout
    assert "in sync" in status or "up to date" in status
    # a second push has nothing to do
    (hooked.root / "notes.txt").write_text("n")
    _commit(hooked, "notes")
    proc = hooked.git("push", "origin", "HEAD")
    assert "dvc push" not in proc.stderr


def test_pre_push_repushes_objects_deleted_from_storage(hooked: SecureRepo) -> None:
    _bare_remote(hooked)
    hooked.git("push", "-q", "-u", "origin", "HEAD")
    _dataset_commit(hooked, "v1")
    index_dir = hooked.storage / "dvc-secure"
    for p in hooked.stored_objects():
        if index_dir not in p.parents:
            p.unlink()
    hooked.git("push", "origin", "HEAD")
    assert len([p for p in hooked.stored_objects() if index_dir not in p.parents]) >= 3


def test_pre_push_blocks_pushed_revert(hooked: SecureRepo) -> None:
    bare = _bare_remote(hooked)
    _dataset_commit(hooked, "v1")
    _dataset_commit(hooked, "v2")
    hooked.git("push", "-q", "-u", "origin", "HEAD")
    # the revert slips past the commit hooks (e.g. made elsewhere, or --no-verify) ...
    hooked.git("-c", "core.hooksPath=/dev/null", "revert", "--no-edit", "HEAD")
    before = run(["git", "rev-parse", "HEAD"], bare, hooked.env).stdout
    # ... and the push gate refuses it
    proc = hooked.git("push", "origin", "HEAD", check=False)
    assert proc.returncode != 0
    assert "sidecar-replayed" not in proc.stderr  # messages are prose, codes stay in reports
    assert "revert or replay" in proc.stderr
    assert "dvc-secure restore data --version 1" in proc.stderr
    assert run(["git", "rev-parse", "HEAD"], bare, hooked.env).stdout == before


def test_pre_commit_blocks_revert_commit(hooked: SecureRepo) -> None:
    _dataset_commit(hooked, "v1")
    _dataset_commit(hooked, "v2")
    head = hooked.git("rev-parse", "HEAD").stdout
    # git revert runs no pre-commit hook: the prepare-commit-msg hook checks instead
    proc = hooked.git("revert", "--no-edit", "HEAD", check=False)
    assert proc.returncode != 0
    assert "dvc-secure restore data --version 1" in proc.stderr
    assert hooked.git("rev-parse", "HEAD").stdout == head
    # a normal commit is checked once (pre-commit), not again by prepare-commit-msg
    hooked.git("reset", "-q", "--hard", "HEAD")
    (hooked.root / "notes.txt").write_text("n")
    hooked.git("add", "notes.txt")
    proc = hooked.git("commit", "-m", "notes")
    assert proc.returncode == 0


def test_pre_push_refuses_non_secure_remote(hooked: SecureRepo) -> None:
    _bare_remote(hooked)
    hooked.git("push", "-q", "-u", "origin", "HEAD")
    _write_dataset(hooked, "v1")
    hooked.secure("seal", "--offline", "data")
    _commit(hooked, "v1")
    hooked.dvc("remote", "add", "plain", str(hooked.root.parent / "plain"))
    hooked.dvc("remote", "default", "--local", "plain")  # not committed: only the push sees it
    proc = hooked.git("push", "origin", "HEAD", check=False)
    assert proc.returncode != 0
    assert "not a secure:// remote" in proc.stderr and "dvc remote default vault" in proc.stderr
    assert not (hooked.root.parent / "plain").exists()


def test_hooks_installed_by_0_1_keep_sealing_and_install_migrates_them(hooked: SecureRepo) -> None:
    """0.1 hook scripts run ``python -m dvc_secure.cli_hooks``: still sealing after the
    layered layout; the next ``dvc-secure install`` rewrites them to ``dvc_secure.cli.hooks``."""
    hooks_dir = Path(hooked.git("rev-parse", "--git-common-dir").stdout.strip())
    hooks_dir = (hooked.root / hooks_dir / "dvc-secure" / "hooks").resolve()
    scripts = [p for p in hooks_dir.iterdir() if "dvc_secure.cli.hooks" in p.read_text()]
    assert {p.name for p in scripts} >= {"pre-commit", "pre-push"}
    for p in scripts:
        p.write_text(p.read_text().replace("dvc_secure.cli.hooks", "dvc_secure.cli_hooks"))
    _file_dataset(hooked, "id\n1\n")
    assert "sealed and staged" in _commit(hooked, "v1").stderr
    assert "table.csv.dvc.seal" in _committed(hooked)
    hooked.secure("install")
    text = (hooks_dir / "pre-commit").read_text()
    assert "dvc_secure.cli.hooks" in text and "dvc_secure.cli_hooks" not in text
