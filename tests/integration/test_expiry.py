"""Grant expiry is judged by the verifier's clock, not by the expired member's
(docs/access.md#what-expiry-guarantees). Clocks are moved with Debian's libfaketime."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from dvc_secure.core.sidecar.model import Sidecar
from tests.conftest import DVC, DVC_SECURE, run
from tests.integration.secure_helpers import days_later
from tests.integration.test_access import Person, add_and_push, commit_keyring, grant

TODAY = dt.datetime.now(dt.timezone.utc).date()


def codes(proc) -> list[str]:  # type: ignore[no-untyped-def]
    return [f["code"] for f in json.loads(proc.stdout)["findings"]]


def test_expired_writer_with_clock_set_back_is_not_trusted_by_others(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"data\n")
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "writer", "--expires", TODAY.isoformat())  # today is his last day
    # three days later bob's grant has expired; he sets his clock back to today (his
    # process runs on the real clock, everyone else's three days ahead) and pushes + seals
    (repo.root / "b.txt").write_text("bob's late change\n")
    run([*DVC, "add", "-q", "b.txt"], repo.root, bob.env)
    run([*DVC, "push", "-q"], repo.root, bob.env)
    run([*DVC_SECURE, "seal", "b.txt.dvc"], repo.root, bob.env)
    repo.git("add", "b.txt.dvc", "b.txt.dvc.seal", ".gitignore")
    repo.git("commit", "-q", "-m", "bob, clock set back")
    sidecar = Sidecar.from_bytes((repo.root / "b.txt.dvc.seal").read_bytes(), "b.txt.dvc.seal")
    assert sidecar.sealed_at.startswith(TODAY.isoformat())  # what his clock claims

    later = days_later(repo.env, 3)
    for args in (["verify", "--json"], ["verify", "--rev", "HEAD~1..HEAD", "--json"]):
        proc = run([*DVC_SECURE, *args], repo.root, later, check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "signed-after-expiry" in codes(proc)
        found = next(f for f in json.loads(proc.stdout)["findings"]
                     if f["code"] == "signed-after-expiry")
        assert f"expired on {TODAY}" in found["message"]
        assert "signer's own clock" in found["message"]
    # the same judgement on the real clock with --as-of (planning, CI replays)
    proc = repo.secure("verify", "--as-of", (TODAY + dt.timedelta(days=3)).isoformat(),
                       "--json", check=False)
    assert "signed-after-expiry" in codes(proc)
    # on bob's own (set back) clock the same history is fine: the verifier's date decides
    assert repo.secure("verify", "--json", check=False).returncode == 0


def test_grant_with_past_expiry_is_refused(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    bob = Person(repo, tmp_path, "bob")
    keyring = (repo.root / ".dvc" / "secure" / "keyring.json").read_bytes()
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    proc = repo.secure("grant", bob.recipient, "--role", "reader", "--expires", yesterday,
                       check=False)
    assert proc.returncode == 2, proc.stderr
    assert "already past" in proc.stderr and "hint:" in proc.stderr
    assert (repo.root / ".dvc" / "secure" / "keyring.json").read_bytes() == keyring
    # today is the last valid day, so it is accepted
    repo.secure("grant", bob.recipient, "--role", "reader", "--expires", TODAY.isoformat())


def test_verify_fails_while_expired_member_holds_current_key(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "reader", "--expires", TODAY.isoformat())
    assert repo.secure("verify", check=False).returncode == 0  # not expired yet
    tomorrow = days_later(repo.env, 1)
    proc = run([*DVC_SECURE, "verify", "--json"], repo.root, tomorrow, check=False)
    assert proc.returncode == 1
    (finding,) = json.loads(proc.stdout)["findings"]
    assert finding["code"] == "expired-member-holds-key"
    assert "dvc-secure rotate" in finding["fix"]
    out = run([*DVC_SECURE, "rotate"], repo.root, tomorrow)
    assert "dropped 'bob' (grant expired)" in out.stdout
    commit_keyring(repo, "rotate")
    assert run([*DVC_SECURE, "verify"], repo.root, tomorrow, check=False).returncode == 0
