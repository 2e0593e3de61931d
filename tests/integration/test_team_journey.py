"""A team of three adopts dvc-secure on a repository with history, with the commands the
docs show (docs/verification.md "Adopting", docs/access.md, docs/reencryption.md): grants
folded into one commit, an interrupted rotation resumed, a pull by each member, the whole
history verified, the audit trail read. Real git (a bare origin), real DVC, real hooks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import DVC, DVC_SECURE, SecureRepo, run
from tests.integration.secure_helpers import INTERRUPT_AFTER_FIRST_OBJECT
from tests.integration.test_access import Person
from tests.integration.test_adoption import LEGACY_COMMITS, legacy_repo


def _card(person: Person) -> str:
    out = person.secure("whoami").stdout
    return next(line.split(": ", 1)[1] for line in out.splitlines()
                if line.startswith("member-card: "))


def _clone(origin: Path, dest: Path, who: Person) -> Path:
    run(["git", "clone", "-q", str(origin), str(dest)], dest.parent, who.env)
    who.secure("install", cwd=dest)  # docs/quickstart.md: once per clone
    return dest


def _rows(root: Path) -> str:
    return (root / "data" / "rows.csv").read_text()


def test_team_of_three_adopts_on_existing_history(tmp_path: Path,
                                                   isolated_env: dict[str, str]) -> None:
    # an existing git + DVC repository with history, pushed to a plain remote
    repo = legacy_repo(tmp_path, isolated_env)
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path, repo.env)
    repo.git("remote", "add", "origin", str(origin))

    # alice adopts: docs/verification.md, "To adopt"
    repo.secure("keygen")
    repo.secure("init", "--remote", "storage", "--member-name", "alice", "--seal-existing",
                "--install-hooks")
    repo.git("add", ".dvc/secure", ".dvc/config", "data.dvc.seal")
    repo.git("commit", "-q", "-m", "dvc-secure: init")
    assert repo.git("push", "-q", "-u", "origin", "main", check=False).returncode == 0

    # two grants before one commit fold into one policy version (docs/access.md)
    bob, carol = Person(repo, tmp_path, "bob"), Person(repo, tmp_path, "carol")
    repo.secure("grant", _card(bob), "--role", "writer", "--name", "bob")
    out = repo.secure("grant", _card(carol), "--role", "reader", "--name", "carol")
    assert "folded into the uncommitted policy version 2" in out.stdout + out.stderr
    repo.git("add", ".dvc/secure")
    repo.git("commit", "-q", "-m", "grant bob and carol")
    repo.git("push", "-q")
    ring = json.loads((repo.root / ".dvc/secure/keyring.json").read_text())
    assert ring["signed"]["policy_version"] == 2

    # bob (writer) clones, pulls, and pushes a new version through the hooks
    bob_root = _clone(origin, tmp_path / "bob-clone", bob)
    bob.dvc("pull", cwd=bob_root)
    assert _rows(bob_root) == _rows(repo.root)
    (bob_root / "data" / "rows.csv").write_text("id\n0\n1\n2\n3\n")
    bob.dvc("add", "-q", "data", cwd=bob_root)
    bob.dvc("push", "-q", cwd=bob_root)
    run(["git", "add", "-A"], bob_root, bob.env)
    commit = run(["git", "commit", "-q", "-m", "data v4"], bob_root, bob.env)
    assert "sealed and staged" in commit.stderr
    run(["git", "push", "-q"], bob_root, bob.env)

    # alice rotates with re-encryption; Ctrl-C after the first object; the message says
    # how to resume, and resuming keeps the same epoch (docs/reencryption.md)
    repo.git("pull", "-q")
    repo.dvc("pull", "-q")
    stopped = subprocess.run([sys.executable, "-c", INTERRUPT_AFTER_FIRST_OBJECT, "rotate",
                              "--reencrypt"], cwd=repo.root, env=repo.env, text=True,
                             capture_output=True)
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    assert "dvc-secure reencrypt" in stopped.stderr
    repo.secure("reencrypt")
    ring = json.loads((repo.root / ".dvc/secure/keyring.json").read_text())
    assert (ring["signed"]["policy_version"], len(ring["signed"]["epochs"])) == (3, 2)
    repo.git("add", ".dvc/secure")
    repo.git("commit", "-q", "-m", "rotate keys, current data re-encrypted")
    repo.git("push", "-q")
    assert repo.secure("doctor").returncode == 0

    # carol (reader) clones and pulls the current data; bob pulls again after the rotation
    carol_root = _clone(origin, tmp_path / "carol-clone", carol)
    carol.dvc("pull", "-q", cwd=carol_root)
    assert _rows(carol_root) == "id\n0\n1\n2\n3\n"
    run(["git", "pull", "-q"], bob_root, bob.env)
    for p in (bob_root / ".dvc" / "cache").rglob("*"):
        if p.is_file():
            p.chmod(0o644)
            p.unlink()
    (bob_root / "data" / "rows.csv").unlink()
    bob.dvc("pull", cwd=bob_root)
    assert _rows(bob_root) == "id\n0\n1\n2\n3\n"
    # a reader cannot push or seal
    (carol_root / "data" / "rows.csv").write_text("id\nforged\n")
    carol.dvc("add", "-q", "data", cwd=carol_root)
    assert carol.dvc("push", "-q", cwd=carol_root, check=False).returncode != 0
    assert carol.secure("seal", "data", cwd=carol_root, check=False).returncode != 0
    run(["git", "checkout", "-q", "--", "."], carol_root, carol.env)

    # the nightly job of docs/ci.md, in every clone: the history before adoption is a note
    for who, root in ((repo, repo.root), (bob, bob_root), (carol, carol_root)):
        proc = run([*DVC_SECURE, "verify", "--all-revisions", "--remote"], root, who.env)
        assert f"NOTE {LEGACY_COMMITS} revision(s) from before dvc-secure was adopted" \
            in proc.stdout
        assert "no findings" in proc.stdout

    # the audit trail names who did what
    audit = json.loads(repo.secure("audit", "--json").stdout)
    events = audit if isinstance(audit, list) else audit.get("events", [])
    seen = {(e.get("actor_name") or e.get("actor") or e.get("who"), e.get("action"))
            for e in events}
    actions = {a for _, a in seen}
    assert {"grant", "rotate", "push", "pull"} <= actions, sorted(actions)
    assert repo.secure("audit", "--verify").returncode == 0
    run([*DVC, "status", "-c", "-q"], repo.root, repo.env)
    assert isinstance(repo, SecureRepo)
