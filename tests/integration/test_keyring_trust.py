"""Keyring trust across history and the access-change workflow, with real git, dvc and
dvc-secure (docs/policy.md, docs/access.md, docs/threat-model.md):

* the keyring rollback an attacker with only git push access can make with
  ``git merge -s ours`` (a fast-forward that keeps a keyring from before a revocation) is
  refused by a fresh clone, reported by ``verify`` and blocked by the hooks;
* several access changes before one commit fold into one policy version, discarding an
  uncommitted change never wedges the clone, an interrupted ``rotate --reencrypt``
  resumes the same epoch, and ``dvc-secure doctor`` diagnoses and repairs a clone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dvc_secure.core.keys.keyring import Keyring
from tests.conftest import DVC, DVC_SECURE, SecureRepo, run
from tests.integration.secure_helpers import INTERRUPT_AFTER_FIRST_OBJECT, check_failed
from tests.integration.test_access import (
    KEYRING,
    Person,
    add_and_push,
    commit_keyring,
    grant,
    storage_snapshot,
    stored_epochs,
    wipe,
)

PIN = ".git/dvc-secure/trusted-keyring.json"
BIN = str(Path(sys.executable).parent)


def _keyring(root: Path, rev: str | None = None) -> Keyring:
    if rev is None:
        return Keyring.from_json((root / KEYRING).read_text(encoding="utf-8"))
    return Keyring.from_json(run(["git", "show", f"{rev}:{KEYRING}"], root, os.environ.copy()).stdout)


def _pinned_version(root: Path) -> int:
    return int(json.loads((root / PIN).read_text(encoding="utf-8"))["policy_version"])


def _hooked(repo: SecureRepo) -> SecureRepo:
    repo.env["PATH"] = BIN + os.pathsep + repo.env.get("PATH", "")
    repo.secure("install")
    return repo


def _branch(repo: SecureRepo) -> str:
    return repo.git("symbolic-ref", "--short", "HEAD").stdout.strip()


def _revoked_writer(repo: SecureRepo, tmp_path: Path) -> tuple[Person, str, str]:
    """main: v1 -> grant bob (writer, v2) -> revoke bob (v3, epoch 2) -> data pushed after.
    Returns bob, the commit before the revocation, and the revocation commit."""
    add_and_push(repo, "a.txt", b"before bob\n")
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "writer")
    before = repo.git("rev-parse", "HEAD").stdout.strip()
    repo.secure("revoke", "bob")
    commit_keyring(repo, "revoke bob")
    revoked = repo.git("rev-parse", "HEAD").stdout.strip()
    add_and_push(repo, "after.txt", b"after the revocation: bob must not read this\n")
    assert _keyring(repo.root).policy_version == 3 and stored_epochs(repo) == {1, 2}
    return bob, before, revoked


def _merge_ours_rollback(repo: SecureRepo, before: str) -> str:
    """The attack: from the commit before the revocation, merge main with '-s ours' (the
    old keyring stays), then fast-forward main to it. Only git, no key."""
    main = _branch(repo)
    repo.git("checkout", "-q", "-b", "attack", before)
    repo.git("merge", "-q", "--no-verify", "-s", "ours", "-m", "Merge branch main", main)
    repo.git("checkout", "-q", main)
    repo.git("merge", "-q", "--ff-only", "attack")  # a fast-forward: nothing looks wrong
    assert _keyring(repo.root).policy_version == 2  # bob is a member again ...
    assert any(m.name == "bob" for m in _keyring(repo.root).members)
    return repo.git("rev-parse", "HEAD").stdout.strip()


def _fresh_clone(repo: SecureRepo, name: str = "fresh-clone") -> Path:
    clone = repo.root.parent / name
    run(["git", "clone", "-q", str(repo.root), str(clone)], repo.root.parent, repo.env)
    return clone


# --- A. keyring rollback through 'git merge -s ours' -----------------------------------------


def test_keyring_rollback_through_merge_ours_is_refused_by_fresh_clone(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    bob, before, revoked = _revoked_writer(repo, tmp_path)
    _merge_ours_rollback(repo, before)
    clone = _fresh_clone(repo)  # every CI job: no trust pin yet

    # alice pushing from the fresh clone would encrypt to epoch 1, which bob holds: refused
    before_push = storage_snapshot(repo)
    (clone / "new.txt").write_text("pushed after the rollback\n")
    run([*DVC, "add", "-q", "new.txt"], clone, repo.env)
    proc = run([*DVC, "push"], clone, repo.env, check=False)
    check_failed(proc, "policy version 2", "policy version 3", "rollback", "git checkout")
    assert storage_snapshot(repo) == before_push
    # bob's signatures are not trusted either: nothing that uses the keyring accepts it
    check_failed(run([*DVC_SECURE, "members"], clone, bob.env, check=False),
                 "policy version 2", "policy version 3")
    check_failed(run([*DVC_SECURE, "seal", "new.txt.dvc", "--offline"], clone, bob.env,
                     check=False), "rollback")
    assert not (clone / PIN).exists()  # nothing was pinned from the rolled-back keyring

    # the printed fix (restore version 3) makes the clone work, and pins version 3
    run(["git", "checkout", revoked[:12], "--", KEYRING], clone, repo.env)
    # (the merge kept the old tree: take the dataset pushed under epoch 2 from main's side)
    run(["git", "checkout", "HEAD^2", "--", "after.txt.dvc"], clone, repo.env)
    run([*DVC, "pull", "-q", "after.txt.dvc"], clone, repo.env)
    assert (clone / "after.txt").read_bytes().startswith(b"after the revocation")
    assert _pinned_version(clone) == 3
    # and an old revision checked out on purpose stays readable in a fresh clone
    old = _fresh_clone(repo, "old-checkout")
    run(["git", "checkout", "-q", before], old, repo.env)
    run([*DVC, "pull", "-q", "a.txt.dvc"], old, repo.env)
    assert (old / "a.txt").read_bytes() == b"before bob\n"
    assert _pinned_version(old) == 3  # the highest validly chained version in history


def test_keyring_rollback_through_merge_ours_is_reported_by_verify(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _, before, revoked = _revoked_writer(repo, tmp_path)
    assert repo.secure("verify", "--all-revisions", "--json").returncode == 0
    merge = _merge_ours_rollback(repo, before)

    for args in (["verify"], ["verify", "--all-revisions"], ["verify", "--rev", f"{revoked}..HEAD"]):
        proc = repo.secure(*args, "--json", check=False)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        findings = json.loads(proc.stdout)["findings"]
        rollback = [f for f in findings if f["code"] == "policy-rollback"]
        assert [f["revision"] for f in rollback] == [merge], findings
        assert "version 3" in rollback[0]["message"] and "version 2" in rollback[0]["message"]
    # a fresh clone's CI gate (no caches) reports it too; doctor names the fix
    clone = _fresh_clone(repo)
    proc = run([*DVC_SECURE, "verify", "--all-revisions", "--json"], clone, repo.env, check=False)
    assert proc.returncode == 1
    assert "policy-rollback" in {f["code"] for f in json.loads(proc.stdout)["findings"]}
    proc = run([*DVC_SECURE, "doctor", "--json"], clone, repo.env, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    history = next(c for c in doc["checks"] if c["name"] == "history")
    assert history["status"] == "problem" and history["fix"].startswith("git checkout ")
    named = history["fix"].split()[2]  # a commit holding version 3: restoring from it works
    assert _keyring(clone, named).digest == _keyring(repo.root, revoked).digest

    # restoring the newest keyring on top makes the tip verify again
    repo.git("checkout", revoked, "--", KEYRING)
    commit_keyring(repo, "restore keyring version 3")
    proc = repo.secure("verify", "--json", check=False)
    assert proc.returncode == 0, proc.stdout


def test_keyring_rollback_through_merge_ours_is_blocked_by_hook(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = _hooked(make_secure_repo())
    _, before, _ = _revoked_writer(repo, tmp_path)
    main = _branch(repo)
    repo.git("checkout", "-q", "-b", "attack", before)

    # pre-merge-commit: the merge commit is not created
    proc = repo.git("merge", "-s", "ours", "-m", "Merge branch main", main, check=False)
    assert proc.returncode != 0
    check_failed(proc, "policy", "version 3", "version 2")
    assert repo.git("rev-parse", "HEAD").stdout.strip() == before
    # pre-commit: the same merge finished with 'git commit'
    repo.git("merge", "--abort", check=False)
    repo.git("merge", "--no-commit", "-s", "ours", main)
    proc = repo.git("commit", "-m", "Merge branch main", check=False)
    assert proc.returncode != 0
    check_failed(proc, "policy", "version 3")
    assert repo.git("rev-parse", "HEAD").stdout.strip() == before
    # made past the hooks (an attacker's clone has none), every later commit on it is blocked
    run(["git", "commit", "-q", "--no-verify", "-m", "Merge branch main"], repo.root,
        {**repo.env, "DVC_SECURE_SKIP_HOOKS": "1"})
    (repo.root / "notes.txt").write_text("an innocent commit on top\n")
    repo.git("add", "notes.txt")
    proc = repo.git("commit", "-m", "notes", check=False)
    assert proc.returncode != 0
    check_failed(proc, "policy", "version 3")


# --- B. keyring changes as a workflow ---------------------------------------------------------


def test_two_grants_before_one_commit_fold_into_one_version(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = _hooked(make_secure_repo())
    add_and_push(repo, "a.txt", b"data\n")
    bob, carol = Person(repo, tmp_path, "bob"), Person(repo, tmp_path, "carol")
    repo.secure("grant", bob.recipient, "--role", "reader", "--name", "bob")
    assert _pinned_version(repo.root) == 1  # an uncommitted change does not move the pin
    out = repo.secure("grant", carol.recipient, "--role", "reader", "--name", "carol")
    assert "folded into the uncommitted policy version 2" in out.stdout
    ring = _keyring(repo.root)
    assert ring.policy_version == 2 and {m.name for m in ring.members} == {"alice", "bob", "carol"}
    commit_keyring(repo, "grant bob and carol")  # the pre-commit hook accepts one version
    assert repo.secure("verify", "--json").returncode == 0
    for who in (bob, carol):
        wipe(repo, "a.txt")
        who.dvc("pull", "-q")
        assert (repo.root / "a.txt").read_bytes() == b"data\n"
    assert _pinned_version(repo.root) == 2  # committed: now pinned
    # and the clone can still change the keyring afterwards
    repo.secure("revoke", "bob")
    commit_keyring(repo, "revoke bob")
    assert _keyring(repo.root).policy_version == 3


def test_discarding_an_uncommitted_grant_does_not_wedge_the_clone(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = _hooked(make_secure_repo())
    add_and_push(repo, "a.txt", b"data\n")
    bob, carol, dave = (Person(repo, tmp_path, n) for n in ("bob", "carol", "dave"))

    # 1. discarded with git
    repo.secure("grant", bob.recipient, "--role", "reader", "--name", "bob")
    repo.git("checkout", "--", KEYRING)
    repo.dvc("push", "-q")
    out = repo.secure("grant", carol.recipient, "--role", "reader", "--name", "carol")
    assert "keyring policy version 2 saved" in out.stdout and "folded" not in out.stdout
    # 2. discarded with dvc-secure
    out = repo.secure("approve", "--discard")
    assert "discarded the uncommitted policy version 2" in out.stdout
    assert _keyring(repo.root).digest == _keyring(repo.root, "HEAD").digest
    assert repo.secure("doctor").returncode == 0
    repo.secure("grant", dave.recipient, "--role", "reader", "--name", "dave")
    commit_keyring(repo, "grant dave")
    ring = _keyring(repo.root)
    assert ring.policy_version == 2 and {m.name for m in ring.members} == {"alice", "dave"}
    assert repo.secure("verify", "--json").returncode == 0
    wipe(repo, "a.txt")
    dave.dvc("pull", "-q")
    wipe(repo, "a.txt")  # so bob's pull must fetch (DVC 3.0 would find dave's cache up to date)
    import shutil

    shutil.rmtree(repo.root / ".dvc" / "cache", ignore_errors=True)
    check_failed(bob.dvc("pull", check=False), "not a member")


def test_doctor_moves_a_pin_left_on_a_never_committed_version(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The clone an older dvc-secure wedged: it pinned an uncommitted grant, which was then
    discarded; every later change failed with 'older than version 2 this clone trusts'."""
    from dvc_secure.adapters.local.repo_keyring import pinned_keyring, repin

    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"data\n")
    bob = Person(repo, tmp_path, "bob")
    repo.secure("grant", bob.recipient, "--role", "reader", "--name", "bob")
    v1, v2 = _keyring(repo.root, "HEAD"), _keyring(repo.root)
    repin(repo.root / ".dvc", v2, [v1.digest, v2.digest])  # what the old pin_trusted did
    assert pinned_keyring(repo.root / ".dvc")[0] == v2
    repo.git("checkout", "--", KEYRING)
    check_failed(repo.secure("grant", bob.recipient, "--role", "reader", check=False),
                 "older than version 2")

    proc = repo.secure("doctor", check=False)
    assert proc.returncode == 1
    assert "never committed" in proc.stdout and "doctor --fix" in proc.stdout
    proc = repo.secure("doctor", "--fix", "--json", check=False)
    assert proc.returncode == 0, proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["pin"]["policy_version"] == 1 and doc["fixed"]
    repo.secure("grant", bob.recipient, "--role", "reader", "--name", "bob")
    commit_keyring(repo, "grant bob")
    assert repo.secure("verify", "--json").returncode == 0


def _dir_dataset(repo: SecureRepo) -> dict[str, bytes]:
    files = {f"data/part-{i}.bin": os.urandom(50_000 + i) for i in range(4)}
    for rel, content in files.items():
        (repo.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo.root / rel).write_bytes(content)
    repo.dvc("add", "-q", "data")
    repo.dvc("push", "-q")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "data")  # sealed by the pre-commit hook
    return files




def _interrupted(repo: SecureRepo, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", INTERRUPT_AFTER_FIRST_OBJECT, *command],
                          cwd=repo.root, env=repo.env, text=True, capture_output=True)


def test_interrupted_rotate_reencrypt_resumes_same_epoch(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = _hooked(make_secure_repo())
    files = _dir_dataset(repo)
    assert stored_epochs(repo) == {1}

    proc = _interrupted(repo, "rotate", "--reencrypt")
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "interrupted" in proc.stderr and "dvc-secure reencrypt" in proc.stderr
    assert stored_epochs(repo) == {1, 2}  # some objects moved, others not yet
    ring = _keyring(repo.root)
    assert (ring.policy_version, ring.current_epoch) == (2, 2)
    doctor = repo.secure("doctor", "--json", check=False)
    assert doctor.returncode == 1
    assert "reencrypt" in {c["name"] for c in json.loads(doctor.stdout)["checks"]
                           if c["status"] == "problem"}

    out = repo.secure("rotate", "--reencrypt")  # the same command again
    assert "resuming the interrupted re-encryption under key epoch 2" in out.stdout
    ring = _keyring(repo.root)
    assert (ring.policy_version, ring.current_epoch) == (2, 2)  # never a second new epoch
    assert stored_epochs(repo) == {2}
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "rotate + re-encrypt")  # the hooks accept it
    assert repo.secure("doctor").returncode == 0
    assert repo.secure("verify", "--remote", "--json").returncode == 0

    clone = _fresh_clone(repo)
    run([*DVC, "pull", "-q"], clone, repo.env)
    for rel, content in files.items():
        assert (clone / rel).read_bytes() == content


def test_doctor_on_a_healthy_clone_and_outside_a_secure_repository(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"data\n")
    proc = repo.secure("doctor")
    assert proc.returncode == 0 and "trust pin" in proc.stdout and "PROBLEM" not in proc.stdout
    doc = json.loads(repo.secure("doctor", "--json").stdout)
    assert doc["ok"] is True and doc["pin"]["digest"] == doc["head"]["digest"]
    # an uncommitted grant is a note (commit or discard it), not a problem
    bob = Person(repo, tmp_path, "bob")
    repo.secure("grant", bob.recipient, "--role", "reader", "--name", "bob")
    proc = repo.secure("doctor")
    assert proc.returncode == 0 and "uncommitted keyring change" in proc.stdout
    assert "approve --discard" in proc.stdout

    plain = tmp_path / "plain"
    plain.mkdir()
    run(["git", "init", "-q"], plain, repo.env)
    run([*DVC, "init", "-q"], plain, repo.env)
    proc = run([*DVC_SECURE, "doctor"], plain, repo.env, check=False)
    assert proc.returncode == 2 and "dvc-secure init" in proc.stderr


def test_interrupted_revoke_reencrypt_resumes_same_epoch(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = _hooked(make_secure_repo())
    files = _dir_dataset(repo)
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "reader")

    proc = _interrupted(repo, "revoke", "bob", "--reencrypt")
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "dvc-secure reencrypt" in proc.stderr
    assert stored_epochs(repo) == {1, 2}
    out = repo.secure("revoke", "bob", "--reencrypt")  # bob is gone already: resume, no epoch 3
    assert "resuming the interrupted re-encryption under key epoch 2" in out.stdout
    ring = _keyring(repo.root)
    assert (ring.policy_version, ring.current_epoch) == (3, 2)
    assert "bob" not in {m.name for m in ring.members} and stored_epochs(repo) == {2}
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "revoke bob + re-encrypt")
    assert repo.secure("verify", "--remote", "--json").returncode == 0
    wipe(repo, *files)
    check_failed(bob.dvc("pull", check=False), "not a member")
