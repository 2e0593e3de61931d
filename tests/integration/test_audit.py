"""The audit trail through the real CLIs: `dvc push`/`pull` record, `dvc-secure audit` shows
and verifies, and tampering with the stored events on the remote directory is detected.

Every test starts from ``pushed_repo`` (conftest.py), whose template ``dvc push`` already
recorded and uploaded event 1 of its clone's chain.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import DVC, SecureRepo
from tests.integration.secure_helpers import check_failed

AUDIT_DIR = ("dvc-secure", "audit", "v1")


def clone_of(repo: SecureRepo, name: str) -> SecureRepo:
    """A second git clone of ``repo`` beside it, using the same remote storage and identity."""
    dest = repo.root.parent / name
    repo.git("clone", "-q", str(repo.root), str(dest))
    twin = SecureRepo(root=dest, storage=repo.storage, identity_file=repo.identity_file,
                      env=dict(repo.env))
    # the remote URL is relative to .dvc/: a sibling clone resolves it to the same storage
    assert twin.dvc("remote", "list").stdout.count("storage") >= 1
    return twin


def event_files(repo: SecureRepo) -> list[Path]:
    return sorted(repo.storage.joinpath(*AUDIT_DIR).glob("*/*.evt"))


def audit_json(repo: SecureRepo, *args: str) -> dict[str, Any]:
    return json.loads(repo.secure("audit", "--json", *args).stdout)  # type: ignore[no-any-return]


def verify(repo: SecureRepo) -> tuple[int, dict[str, Any]]:
    proc = repo.secure("audit", "--verify", "--json", check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def head(repo: SecureRepo) -> str:
    return repo.git("rev-parse", "HEAD").stdout.strip()


def add_file(repo: SecureRepo, name: str, content: bytes) -> None:
    (repo.root / name).write_bytes(content)
    repo.dvc("add", "-q", name)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", f"add {name}")


def test_push_and_pull_are_visible_from_a_second_clone(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    other = clone_of(repo, "second")
    other.dvc("pull", "-q")
    assert len(event_files(repo)) == 2  # one chain per clone
    doc = audit_json(other)
    assert doc["pending_upload"] == 0 and doc["findings"] == []
    push, pull = doc["events"]
    assert (push["action"], pull["action"]) == ("push", "pull")
    for ev in (push, pull):
        assert ev["actor"] == "alice" and ev["role"] == "admin"
        assert ev["revision"] == head(repo)
        assert ev["client"]["host"] == socket.gethostname()[:64]
        assert ev["datasets"] == ["all"]
    assert push["details"]["objects"] == 7 and push["details"]["failed"] == 0
    assert pull["details"]["objects"] == 7 and pull["details"]["bytes"] > 2 << 20
    assert push["client"]["clone"] != pull["client"]["clone"]
    assert push["chain"] != pull["chain"]
    # the table view of the first clone shows both, newest last
    table = repo.secure("audit").stdout.splitlines()
    assert table[0].split()[:4] == ["time", "actor", "role", "action"]
    assert [line.split()[3] for line in table[1:]] == ["push", "pull"]
    code, report = verify(repo)
    assert code == 0 and report["events"] == 2 and report["chains"] == 2


def test_targets_filters_and_since(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    add_file(repo, "extra.txt", b"extra data\n")
    repo.dvc("push", "-q", "extra.txt.dvc")
    events = audit_json(repo)["events"]
    assert events[-1]["datasets"] == ["extra.txt.dvc"]
    assert events[-1]["details"]["objects"] == 1
    only = audit_json(repo, "--dataset", "extra.txt")["events"]
    assert [e["datasets"] for e in only] == [["extra.txt.dvc"]]  # the first push ('all')
    # was at a revision without extra.txt; for data it is listed (it moved every dataset)
    assert [e["datasets"] for e in audit_json(repo, "--dataset", "data")["events"]] == [["all"]]
    assert audit_json(repo, "--since", "2999-01-01")["events"] == []
    assert len(audit_json(repo, "--since", "2000-01-01")["events"]) == 2


def test_seal_and_verify_are_recorded(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.secure("seal", "data.dvc")
    repo.secure("verify", check=False)  # its outcome is in the event, either way
    assert not any(p for p in event_files(repo) if p.name == "0000000002.evt"), \
        "recording must not upload (it runs inside git hooks)"
    # verify --remote talks to the remote anyway, so it uploads the queue (CI clones vanish)
    repo.secure("verify", "--remote", check=False)
    assert len(event_files(repo)) == 4
    events = audit_json(repo)["events"]
    assert [e["action"] for e in events] == ["push", "seal", "verify", "verify"]
    assert events[1]["datasets"] == ["data.dvc"]
    assert events[2]["details"]["rev"] == "HEAD" and "ok" in events[2]["details"]
    assert events[3]["details"]["remote"] is True


def test_concurrent_pushes_from_two_clones_lose_no_events(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    other = clone_of(repo, "second")
    add_file(repo, "first.txt", b"from the first clone\n")
    add_file(other, "second.txt", b"from the second clone\n")
    rounds = 2
    for _ in range(rounds):
        procs = [subprocess.Popen([*DVC, "push", "-q"], cwd=r.root, env=r.env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for r in (repo, other)]
        for p in procs:
            _out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            assert "audit" not in err, err
    code, report = verify(other)
    assert code == 0, report["findings"]
    assert report["events"] == 1 + 2 * rounds and report["chains"] == 2
    assert report["pending_upload"] == 0
    assert audit_json(repo)["pending_upload"] == 0


def test_edited_audit_event_is_detected(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    (stored,) = event_files(repo)
    blob = bytearray(stored.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    stored.write_bytes(bytes(blob))
    proc = repo.secure("audit", "--verify", check=False)
    assert proc.returncode == 1
    assert "[edited]" in proc.stdout and "0000000001.evt" in proc.stdout
    assert "fix:" in proc.stdout


def test_truncated_audit_log_is_detected(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.dvc("push", "-q")  # nothing new to push: still an event (2), uploaded at exit
    files = event_files(repo)
    assert [p.name for p in files] == ["0000000001.evt", "0000000002.evt"]
    # a second clone reads the log, then writes an event that names chain 1's head as seen
    other = clone_of(repo, "second")
    audit_json(other)
    other.dvc("pull", "-q")
    files[-1].unlink()  # the provider drops the tail of the first clone's chain
    # the first clone catches it by its checkpoint ...
    code, report = verify(repo)
    assert code == 1 and [f["kind"] for f in report["findings"]] == ["truncated"]
    # ... and a fresh clone, that never saw event 2 itself, by the second clone's event
    third = clone_of(repo, "third")
    code, report = verify(third)
    assert code == 1 and [f["kind"] for f in report["findings"]] == ["truncated"]
    assert "saw this chain up to event 2" in report["findings"][0]["message"]


def test_deleted_middle_event_is_detected(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.dvc("push", "-q")
    repo.dvc("push", "-q")
    files = event_files(repo)
    assert len(files) == 3
    files[1].unlink()
    code, report = verify(repo)
    assert code == 1
    assert [(f["kind"], f["seq"]) for f in report["findings"]] == [("gap", 2)]
    assert report["findings"][0]["where"].endswith("0000000002.evt")


def test_audit_ciphertext_on_the_remote_contains_no_plaintext(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.secure("seal", "data.dvc")
    repo.secure("audit")
    files = event_files(repo)
    assert len(files) == 2
    for p in files:
        blob = p.read_bytes()
        assert blob.startswith(b"DSAUDIT\x01")
        for word in (b"push", b"seal", b"alice", b"data.dvc", b"dvcsign1",
                     socket.gethostname().encode(), head(repo).encode()):
            assert word not in blob, word


def test_failed_audit_upload_keeps_the_event_queued(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    (chain_dir,) = repo.storage.joinpath(*AUDIT_DIR).iterdir()
    shutil.rmtree(chain_dir)
    chain_dir.write_bytes(b"not a directory")  # uploads under it fail, even for root
    proc = repo.dvc("push")  # the push itself succeeds
    warnings = [line for line in proc.stderr.splitlines() if "audit" in line]
    assert len(warnings) == 1 and "queued" in warnings[0], proc.stderr
    listed = repo.secure("audit")
    assert "1 event(s) of this clone not yet uploaded" in listed.stderr
    chain_dir.unlink()
    doc = audit_json(repo)
    assert doc["pending_upload"] == 0
    # event 1 was deleted above: the clone's checkpoint reports it as a gap, nothing else
    assert [(f["kind"], f["seq"]) for f in doc["findings"]] == [("gap", 1)]


def test_identity_outside_the_keyring_records_nothing(pushed_repo: SecureRepo,
                                                     tmp_path: Path) -> None:
    repo = pushed_repo
    stranger = tmp_path / "stranger.txt"
    repo.secure("keygen", "--output", str(stranger))
    env = {**repo.env, "DVC_SECURE_IDENTITY_FILE": str(stranger)}
    (repo.root / "new.txt").write_text("new\n")
    subprocess.run([*DVC, "add", "-q", "new.txt"], cwd=repo.root, env=env, check=True)
    proc = subprocess.run([*DVC, "push"], cwd=repo.root, env=env, text=True,
                          capture_output=True)
    # DVC reports the real problem once; the audit trail adds no second message
    text = check_failed(proc, "not a member")
    assert "audit" not in text
    assert len(event_files(repo)) == 1
    assert audit_json(repo)["pending_upload"] == 0


def test_seal_by_the_pre_commit_hook_is_recorded(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.secure("seal")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "seal")
    repo.secure("install")
    (repo.root / "hooked.txt").write_bytes(b"sealed inside git's pre-commit hook\n")
    repo.dvc("add", "-q", "hooked.txt")
    repo.dvc("push", "-q", "hooked.txt.dvc")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "add hooked.txt")  # the hook seals and records
    assert (repo.root / "hooked.txt.dvc.seal").exists()
    events = audit_json(repo)["events"]
    seal = [e for e in events if e["action"] == "seal" and e["details"].get("via")]
    assert len(seal) == 1 and seal[0]["datasets"] == ["hooked.txt.dvc"]
    assert seal[0]["details"]["via"] == "pre-commit"
    assert seal[0]["actor"] == "alice"
    assert verify(repo)[0] == 0


def test_access_changes_are_recorded(pushed_repo: SecureRepo, tmp_path: Path) -> None:
    repo = pushed_repo
    ident = tmp_path / "bob-identity.txt"
    out = repo.secure("keygen", "--output", str(ident)).stdout
    card = next(line.split(": ", 1)[1] for line in out.splitlines()
                if line.startswith("recipient: "))
    signing = next(line.split(": ", 1)[1] for line in out.splitlines()
                   if line.startswith("signing-key: "))
    repo.secure("grant", card, "--role", "reader", "--name", "bob", "--signing-key", signing)
    repo.secure("revoke", "bob")
    events = audit_json(repo)["events"]
    changes = [e for e in events if e["action"] in ("grant", "revoke")]
    assert [e["action"] for e in changes] == ["grant", "revoke"]
    assert changes[0]["details"]["policy_version"] == 2
    # not committed in between: the revoke folds into the same uncommitted version 2
    assert changes[1]["details"]["policy_version"] == 2
    assert any("revoked 'bob'" in line for line in changes[1]["details"]["summary"])
    assert any("folded into" in line for line in changes[1]["details"]["summary"])
    assert verify(repo)[0] == 0
