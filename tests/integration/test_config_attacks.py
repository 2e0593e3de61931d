"""Attacks through ``.dvc/config``, which is git-tracked but not signed (issue 13 item 2).

Each attack is a commit by someone with git push access (no key); the victim's next plain
``dvc push`` (or ``dvc gc -c``) must be refused inside DVC, before any byte leaves, because
the secure remotes are pinned in the signed keyring (docs/spec/keyring.md §4b).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dvc_secure.adapters.dvc.config_file import dvc_remotes
from tests.conftest import SecureRepo
from tests.integration.secure_helpers import MARKER, check_failed, files_under

ROOT_CONFIG = ".dvc/config"


def _attacker_commit(repo: SecureRepo, message: str) -> None:
    """What arrives with the next ``git pull``: a commit that edits .dvc/config."""
    repo.git("add", ROOT_CONFIG)
    repo.git("commit", "-q", "-m", message)


def _new_data(repo: SecureRepo) -> None:
    (repo.root / "fresh.txt").write_bytes(MARKER + b" new rows\n")
    repo.dvc("add", "-q", "fresh.txt")


def _assert_nothing_leaked(where: Path) -> None:
    for path in files_under(where):
        assert MARKER not in path.read_bytes(), f"plaintext reached {path}"
    assert not list(where.rglob("files")), f"DVC's MD5 layout appeared under {where}"


@pytest.mark.parametrize("what", ["vault", "storage"])
def test_vault_url_changed_to_plain_path_push_is_refused(pushed_repo: SecureRepo,
                                                         tmp_path: Path, what: str) -> None:
    repo = pushed_repo
    evil = tmp_path / "attacker-storage"
    # vault itself becomes a plain path, or the storage it wraps moves to the attacker
    repo.dvc("remote", "modify", what, "url", str(evil))
    _attacker_commit(repo, f"move {what}")
    _new_data(repo)
    proc = repo.dvc("push", check=False)
    check_failed(proc, "vault" if what == "vault" else "storage", "remote-policy")
    assert not evil.exists() or not files_under(evil), files_under(evil)
    # with the committed configuration restored, the same push works
    repo.git("checkout", "HEAD~1", "--", ROOT_CONFIG)
    repo.dvc("push", "-q")


def test_core_remote_switched_to_plain_remote_push_is_refused(pushed_repo: SecureRepo,
                                                               tmp_path: Path) -> None:
    repo = pushed_repo
    plain = tmp_path / "plain-storage"
    repo.dvc("remote", "add", "plain", str(plain))
    repo.dvc("remote", "default", "plain")
    _attacker_commit(repo, "new default remote")
    _new_data(repo)
    for args in ([], ["-r", "plain"]):
        proc = repo.dvc("push", *args, check=False)
        check_failed(proc, "'plain' is not a secure remote", "dvc push -r vault")
    assert not plain.exists()
    # the same for a remote that was never committed (config.local) and for pull
    proc = repo.dvc("pull", "-r", "plain", check=False)
    check_failed(proc, "'plain' is not a secure remote")


def test_hide_names_disabled_by_commit_is_refused(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    before = files_under(repo.storage)
    repo.dvc("remote", "modify", "vault", "hide_names", "false")
    _attacker_commit(repo, "faster listing")
    _new_data(repo)
    proc = repo.dvc("push", check=False)
    check_failed(proc, "hide_names is false, the policy pins true")
    assert files_under(repo.storage) == before
    _assert_nothing_leaked(repo.storage)


def test_allow_gc_sealed_enabled_by_commit_is_refused(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.secure("seal")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "sealed")
    # model.bin leaves the workspace: its object is now needed by the sealed history only
    repo.git("rm", "-q", "model.bin.dvc", "model.bin.dvc.seal")
    repo.git("commit", "-q", "-m", "drop model")
    before = files_under(repo.storage)
    repo.dvc("remote", "modify", "vault", "allow_gc_sealed", "true")
    _attacker_commit(repo, "tidy the remote")
    proc = repo.dvc("gc", "-c", "-w", "-f", check=False)
    check_failed(proc, "allow_gc_sealed is true, the policy pins false")
    assert files_under(repo.storage) == before
    # the same through a committed .dvc/config.local (git add -f)
    repo.git("checkout", "HEAD~1", "--", ROOT_CONFIG)
    repo.dvc("remote", "modify", "--local", "vault", "allow_gc_sealed", "true")
    repo.git("add", "-f", ".dvc/config.local", ROOT_CONFIG)
    repo.git("commit", "-q", "-m", "tidy the remote, locally")
    proc = repo.dvc("gc", "-c", "-w", "-f", check=False)
    check_failed(proc, "allow_gc_sealed is true, the policy pins false")
    assert files_under(repo.storage) == before
    # the documented one-off erasure in this clone's own (untracked) config.local works,
    # which shows the gc above would have deleted sealed data
    repo.git("rm", "-q", "--cached", ".dvc/config.local")
    repo.dvc("gc", "-c", "-w", "-f")
    import dvc

    if tuple(int(x) for x in dvc.__version__.split(".")[:2]) >= (3, 1):
        # (DVC 3.0's gc -c keeps these objects for reasons of its own: the refusals above,
        # the security part, hold on every version)
        assert len(files_under(repo.storage)) < len(before)


# A config that a line-by-line reader and configobj (DVC) read differently: configobj keeps
# [core] and [CORE] apart and DVC lower-cases the keys afterwards, so the later one wins.
DISAGREEING_CONFIG = """\
[core]
    remote = vault
['remote "storage"']
    url = ../../storage
['remote "vault"']
    url = secure://storage
['remote "plain"']
    url = {plain}
[CORE]
    remote = plain
"""


def test_config_parser_disagreement_cannot_hide_a_plain_remote(pushed_repo: SecureRepo,
                                                                tmp_path: Path) -> None:
    repo = pushed_repo
    repo.secure("install")
    repo.secure("seal")  # confidential by default: must go to a secure remote
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "sealed")
    plain = tmp_path / "plain-storage"
    (repo.root / ROOT_CONFIG).write_text(DISAGREEING_CONFIG.format(plain=plain))

    # the hooks read what DVC reads ...
    from dvc.config import Config

    from dvc_secure.plugin import register

    register()  # DVC 3.0's pytest plugin imports dvc before the import hook can patch it
    dvc_view = Config(dvc_dir=str(repo.root / ".dvc"))
    assert dvc_view["core"]["remote"] == "plain"
    assert dvc_remotes(repo.root / ".dvc").default == "plain"
    # ... so the pre-commit hook blocks the commit that hides the plain default
    repo.git("add", ROOT_CONFIG)
    proc = repo.git("commit", "-q", "-m", "innocent looking", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "would go to remote 'plain'" in proc.stderr
    # and DVC refuses the push even if the commit got in some other way (hooks skipped)
    repo.env["DVC_SECURE_SKIP_HOOKS"] = "1"
    repo.git("commit", "-q", "--no-verify", "-m", "innocent looking")
    _new_data(repo)
    proc = repo.dvc("push", check=False)
    check_failed(proc, "'plain' is not a secure remote")
    assert not plain.exists()


def test_keyring_deleted_by_commit_cannot_unpin_remotes(pushed_repo: SecureRepo,
                                                        tmp_path: Path) -> None:
    """Deleting the keyring in the same commit must not switch the pin off: this clone's
    trust pin (in .git, which no push can write) still holds the pinned policy."""
    repo = pushed_repo
    evil = tmp_path / "attacker-storage"
    repo.git("rm", "-q", ".dvc/secure/keyring.json")
    repo.dvc("remote", "modify", "vault", "url", str(evil))
    _attacker_commit(repo, "drop dvc-secure")
    _new_data(repo)
    proc = repo.dvc("push", check=False)
    check_failed(proc, "keyring.json is missing", "git checkout")
    assert not evil.exists() or not files_under(evil)


def test_admin_pins_a_deliberate_remote_change(pushed_repo: SecureRepo) -> None:
    """The legitimate path: the admin signs the new configuration into the policy."""
    import json

    repo = pushed_repo
    assert "matches the pin" in repo.secure("remote-policy").stdout
    repo.dvc("remote", "modify", "vault", "hide_names", "false")
    shown = repo.secure("remote-policy", check=False)
    assert shown.returncode == 1 and "differs from the pin" in shown.stdout
    before = json.loads((repo.root / ".dvc/secure/keyring.json").read_text())["signed"]
    out = repo.secure("remote-policy", "--update")
    assert "hide_names false" in out.stdout
    after = json.loads((repo.root / ".dvc/secure/keyring.json").read_text())["signed"]
    assert after["policy_version"] == before["policy_version"] + 1
    assert after["remotes"]["secure"][0]["hide_names"] is False
    _new_data(repo)
    # the pin now allows it, but the storage holds objects under hidden names: a second copy
    # under plain names is refused (docs/backends.md), not written silently
    proc = repo.dvc("push", check=False)
    assert proc.returncode == 1 and "signed remote policy" not in proc.stderr
    assert "hide_names" in proc.stderr
    assert not list(repo.storage.rglob("files"))
