"""Re-encryption of current revisions under a new key epoch, through real dvc, git and
dvc-secure commands (dvc push, dvc-secure rotate/revoke/grant, dvc pull, verify --remote).

Interrupted runs are real processes killed with SIGKILL: once while an object is being
uploaded to its temporary name, once between two objects. After every step a member pulls
everything into an empty cache and gets the sealed bytes back.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from dvc_secure.core.format.object_format import read_header
from tests.conftest import DVC_SECURE, SecureRepo, run

RECORD = ".dvc/secure/reencrypted/epoch-2.json"


def _dataset() -> dict[str, bytes]:
    rnd = random.Random(5)
    files = {f"data/part-{i}.bin": rnd.randbytes((1 << 20) + 4096 * i) for i in range(6)}
    files["data/notes.txt"] = b"rotation test\n" * 100
    return files


def _write(repo: SecureRepo, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = repo.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _commit_sealed(repo: SecureRepo, message: str) -> None:
    repo.dvc("add", "-q", "data")
    repo.dvc("push", "-q")
    repo.secure("seal", "data")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message)


def _objects(repo: SecureRepo) -> list[Path]:
    return sorted(p for p in repo.stored_objects() if "dvc-secure" not in p.relative_to(repo.storage).parts)


def _epochs(repo: SecureRepo) -> list[int]:
    out = []
    for p in _objects(repo):
        with p.open("rb") as f:
            out.append(read_header(f).epoch)
    return out


def _keygen(repo: SecureRepo, path: Path) -> tuple[str, str]:
    env = dict(repo.env, **{ENV_IDENTITY_FILE: str(path)})
    out = run([sys.executable, "-m", "dvc_secure.cli.main", "keygen"], repo.root, env).stdout
    lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return lines["recipient"], lines["signing-key"]


def _as(repo: SecureRepo, identity: Path) -> dict[str, str]:
    return dict(repo.env, **{ENV_IDENTITY_FILE: str(identity)})


def _pull_fresh(repo: SecureRepo, env: dict[str, str] | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
    """Wipe cache and workspace data, then a real ``dvc pull`` (as ``env``'s identity)."""
    shutil.rmtree(repo.root / ".dvc" / "cache", ignore_errors=True)
    shutil.rmtree(repo.root / "data", ignore_errors=True)
    quiet = ["-q"] if check else []  # a failure is expected: keep DVC's error message
    return run([sys.executable, "-m", "dvc", "pull", *quiet], repo.root, env or repo.env, check)


def _assert_data(repo: SecureRepo, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        assert (repo.root / rel).read_bytes() == content, rel


def _verify_remote(repo: SecureRepo) -> tuple[int, list[dict[str, str]]]:
    proc = repo.secure("verify", "--json", "--remote", check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)["findings"]


def _reencrypt_killed(repo: SecureRepo, trigger: str) -> int:
    """Run the re-encryption in a child process that SIGKILLs itself at ``trigger``:
    'upload' (a temporary object appeared in storage) or 'after-3' (three objects done)."""
    script = textwrap.dedent(f"""
        import os, signal, threading, time
        from pathlib import Path
        from dvc_secure.services.reencrypt import reencrypt_current_revisions

        tmp = Path({str(repo.storage / "dvc-secure" / "reencrypt-tmp")!r})

        def watch():
            while True:
                if tmp.is_dir() and any(tmp.iterdir()):
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(0.001)

        def progress(done, total):
            if {trigger!r} == "after-3" and done == 3:
                os.kill(os.getpid(), signal.SIGKILL)

        if {trigger!r} == "upload":
            threading.Thread(target=watch, daemon=True).start()
        reencrypt_current_revisions(Path("."), progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=repo.root, env=repo.env,
                          capture_output=True, text=True)
    return proc.returncode


def _rotated_repo(make_secure_repo) -> tuple[SecureRepo, dict[str, bytes], dict[str, bytes]]:  # type: ignore[no-untyped-def]
    """main: sealed dataset; branch 'exp': one more file, sealed; both pushed; then a key
    rotation (epoch 2) committed on main. Returns the repo and both branches' data."""
    repo = make_secure_repo()
    main = _dataset()
    _write(repo, main)
    _commit_sealed(repo, "v1")
    repo.git("checkout", "-q", "-b", "exp")
    exp = dict(main, **{"data/extra.bin": random.Random(9).randbytes(300_000)})
    _write(repo, exp)
    _commit_sealed(repo, "exp v2")
    repo.git("checkout", "-q", "-")
    repo.dvc("checkout", "-q")
    repo.secure("rotate")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "rotate")
    return repo, main, exp


def test_interrupted_reencryption_resumes_and_every_step_stays_pullable(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, main, exp = _rotated_repo(make_secure_repo)
    n = len(_objects(repo))
    assert set(_epochs(repo)) == {1}
    # bob joins after the rotation and holds only the new epoch
    bob = tmp_path / "bob.txt"
    bob_recipient, _ = _keygen(repo, bob)
    repo.secure("grant", bob_recipient, "--role", "reader", "--name", "bob", "--current-only")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "grant bob")
    assert _pull_fresh(repo, _as(repo, bob), check=False).returncode != 0  # epoch 1 objects

    # killed while uploading the first re-encrypted object (its temporary copy had just
    # appeared): at most that object was replaced, all readable
    assert _reencrypt_killed(repo, "upload") == -signal.SIGKILL
    assert sorted(_epochs(repo)).count(2) <= 1
    assert list((repo.storage / "dvc-secure" / "reencrypt-tmp").iterdir())  # killed mid-way
    _pull_fresh(repo)
    _assert_data(repo, main)

    # killed between objects: a mix of epochs, still every object readable by alice
    assert _reencrypt_killed(repo, "after-3") == -signal.SIGKILL
    assert sorted(_epochs(repo)).count(2) == 3
    _pull_fresh(repo)
    _assert_data(repo, main)

    # resume: completes, and reports what it skipped
    proc = run([*DVC_SECURE, "reencrypt"], repo.root, repo.env)
    assert f"{n} object(s) of current revisions: {n - 3} re-encrypted, 3 already at epoch 2" \
        in proc.stdout
    assert "re-encrypting" not in proc.stderr  # no counter off a terminal (CI logs)
    assert set(_epochs(repo)) == {2} and len(_objects(repo)) == n
    assert not list((repo.storage / "dvc-secure" / "reencrypt-tmp").rglob("*"))  # leftovers gone
    # a rerun has nothing left to do and keeps the record byte for byte
    record = (repo.root / RECORD).read_bytes()
    again = run([*DVC_SECURE, "reencrypt"], repo.root, repo.env).stdout
    assert f"0 re-encrypted, {n} already at epoch 2" in again
    assert (repo.root / RECORD).read_bytes() == record

    # the ciphertext changed: without the committed record verify --remote must fail ...
    rc, findings = _verify_remote(repo)
    assert rc == 1 and {f["code"] for f in findings} == {"remote-object-corrupted"}
    repo.git("add", RECORD)
    repo.git("commit", "-q", "-m", "re-encryption record")
    # ... and with it it passes, for every branch
    assert _verify_remote(repo) == (0, [])
    proc = repo.secure("verify", "--remote", "--all-revisions", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # bob, holding only the new epoch, now pulls both branches
    _pull_fresh(repo, _as(repo, bob))
    _assert_data(repo, main)
    repo.git("checkout", "-q", "exp")
    _pull_fresh(repo, _as(repo, bob))
    _assert_data(repo, exp)


def _reencrypted_and_committed(make_secure_repo, with_record: bool = True) -> SecureRepo:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _write(repo, {"data/a.bin": os.urandom(200_000), "data/b.txt": b"hello\n"})
    _commit_sealed(repo, "v1")
    repo.secure("rotate", "--reencrypt")
    assert set(_epochs(repo)) == {2}
    if with_record:
        repo.git("add", "-A")
    else:
        repo.git("add", ".dvc/secure/keyring.json")
    repo.git("commit", "-q", "-m", "rotate + re-encrypt")
    assert _verify_remote(repo)[0] == (0 if with_record else 1)
    return repo


def _commit_record(repo: SecureRepo, doc: dict[str, object]) -> None:
    (repo.root / RECORD).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    repo.git("add", RECORD)
    repo.git("commit", "-q", "--no-verify", "-m", "tampered record")


def test_forged_reencryption_record_is_rejected_by_verify_remote(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    """Someone with storage write access replaces an object and edits the record to
    vouch for their bytes: the record's signature no longer verifies."""
    repo = _reencrypted_and_committed(make_secure_repo)
    victim = _objects(repo)[0]
    doc = json.loads((repo.root / RECORD).read_text())
    entry = next(e for e in doc["signed"]["objects"]
                 if victim.relative_to(repo.storage).as_posix() == e["path"])
    forged = os.urandom(entry["new_size"])
    victim.write_bytes(forged)
    entry["new_sha256"] = hashlib.sha256(forged).hexdigest()
    _commit_record(repo, doc)
    rc, findings = _verify_remote(repo)
    codes = {f["code"] for f in findings}
    assert rc == 1 and codes == {"remote-object-corrupted", "reencryption-record-invalid"}


def test_unsigned_reencryption_record_is_rejected_by_verify_remote(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    """The genuine record was never committed; someone commits it with its signature
    stripped (or writes one without a key): it vouches for nothing."""
    repo = _reencrypted_and_committed(make_secure_repo, with_record=False)
    doc = json.loads((repo.root / RECORD).read_text())
    doc["signatures"] = []
    _commit_record(repo, doc)
    rc, findings = _verify_remote(repo)
    assert rc == 1
    assert {f["code"] for f in findings} == {"remote-object-corrupted", "reencryption-record-invalid"}


def test_record_stays_valid_in_history_when_a_later_copy_is_damaged(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    """A validly signed record once committed keeps vouching for the bytes it lists; a
    damaged copy at the tip is still reported."""
    repo = _reencrypted_and_committed(make_secure_repo)
    doc = json.loads((repo.root / RECORD).read_text())
    doc["signatures"] = []
    _commit_record(repo, doc)
    rc, findings = _verify_remote(repo)
    assert rc == 1 and [f["code"] for f in findings] == ["reencryption-record-invalid"]


def test_revoked_member_cannot_read_objects_after_revoke_reencrypt(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    files = {"data/a.bin": os.urandom(150_000)}
    _write(repo, files)
    _commit_sealed(repo, "v1")
    carol = tmp_path / "carol.txt"
    recipient, _ = _keygen(repo, carol)
    repo.secure("grant", recipient, "--role", "reader", "--name", "carol")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "grant carol")
    _pull_fresh(repo, _as(repo, carol))  # carol could read epoch 1
    _assert_data(repo, files)
    out = repo.secure("revoke", "carol", "--reencrypt")
    assert "re-encrypt" in (out.stdout + out.stderr)
    # carol keeps an old checkout of the keyring: it still wraps epoch 1 to her
    old_keyring = repo.git("show", "HEAD:.dvc/secure/keyring.json").stdout
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "revoke carol, re-encrypt")
    assert set(_epochs(repo)) == {2}
    _pull_fresh(repo)
    _assert_data(repo, files)

    # the next seal pins the re-encrypted bytes of the objects it reuses, not the old ones
    files["data/b.txt"] = b"added after the rotation\n"
    _write(repo, files)
    _commit_sealed(repo, "v2")
    sidecar = json.loads((repo.root / "data.dvc.seal").read_text())
    index = sidecar["signed"]["outputs"]["data"]["remote_index"]
    entries = json.loads((repo.storage / "dvc-secure" / "index" / f"{index}.json").read_bytes())
    for e in entries["objects"]:
        assert hashlib.sha256((repo.storage / e["path"]).read_bytes()).hexdigest() == e["sha256"]
    assert _verify_remote(repo) == (0, [])

    old_checkout = repo.root / ".dvc" / "secure" / "keyring.json"
    old_checkout.write_text(old_keyring)
    proc = _pull_fresh(repo, _as(repo, carol), check=False)
    assert proc.returncode != 0 and not (repo.root / "data" / "a.bin").exists()
    assert "key epoch 2" in proc.stdout + proc.stderr  # refused for want of the new key


def test_reader_may_not_reencrypt(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _write(repo, {"data/a.bin": b"x" * 1000})
    _commit_sealed(repo, "v1")
    dave = tmp_path / "dave.txt"
    recipient, _ = _keygen(repo, dave)
    repo.secure("grant", recipient, "--role", "reader", "--name", "dave")
    repo.secure("rotate")
    proc = run([*DVC_SECURE, "reencrypt"], repo.root, _as(repo, dave),
               check=False)
    assert proc.returncode != 0 and "writer or admin" in proc.stderr
    assert set(_epochs(repo)) == {1}
