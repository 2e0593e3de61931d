"""Pure rules behind keyring changes that issue 13 item 6 found attackable: an expired admin
may not change or approve the keyring; an approving admin sees what the change does."""

from __future__ import annotations

import datetime

import pytest

from dvc_secure.core.keys import policy_changes as changes
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring, Member
from dvc_secure.errors import AccessDeniedError


def _admin(expires: str | None) -> Member:
    return Member(name="bob", recipient="age1x", role="admin", expires=expires)


def test_attack_expired_admin_may_not_govern() -> None:
    bob = _admin("2026-05-31")
    assert changes.check_may_govern(bob, datetime.date(2026, 5, 31)) is bob  # last valid day
    with pytest.raises(AccessDeniedError, match="expired on 2026-05-31") as err:
        changes.check_may_govern(bob, datetime.date(2026, 6, 1))
    assert "ask another admin" in str(err.value)


def test_admin_without_expiry_governs() -> None:
    bob = _admin(None)
    assert changes.check_may_govern(bob, datetime.date(2099, 1, 1)) is bob


def test_describe_change_names_every_visible_change() -> None:
    alice, carol = Identity.generate(), Identity.generate()
    v1 = Keyring.create(alice, "alice", "t")
    keys = v1.unwrap(alice)
    v2 = changes.grant(v1, keys, name="carol", recipient=carol.recipient, role="reader",
                       signing_key=None, expires="2030-01-01", now="t")
    assert changes.describe_change(v1, v2) == ["adds member 'carol' as reader until 2030-01-01"]
    v3 = changes.grant(v2, keys, name="carol", recipient=carol.recipient, role="admin",
                       signing_key=carol.signing_key, expires=None, now="t")
    assert changes.describe_change(v2, v3) == [
        "changes member 'carol': reader until 2030-01-01 -> 'carol' admin with another "
        "signing key"]
    v4 = changes.set_threshold(v3, 2)
    assert changes.describe_change(v3, v4) == ["changes the threshold from 1 to 2"]
    v5 = changes.revoke(v3, keys, member="carol", now="t")
    lines = changes.describe_change(v3, v5)
    assert "removes member 'carol' (admin)" in lines and "starts key epoch 2" in lines
    assert changes.describe_change(v1, v1.successor()) == [
        "changes nothing visible in members, threshold, epochs or remotes"]


def _renewal_by_expired_admin() -> tuple[Keyring, Keyring, Identity]:
    """v2: alice and bob admins, bob's grant valid until 2026-05-31; v3: bob renews himself,
    signed by bob alone (threshold 1). Returns (v2, v3, alice's identity)."""
    alice, bob = Identity.generate(), Identity.generate()
    assert alice.signing is not None and bob.signing is not None
    v1 = Keyring.create(alice, "alice", "t")
    keys = v1.unwrap(alice)
    v2 = changes.grant(v1, keys, name="bob", recipient=bob.recipient, role="admin",
                       signing_key=bob.signing_key, expires="2026-05-31", now="t")
    v2.sign(alice.signing)
    v3 = changes.grant(v2, keys, name="bob", recipient=bob.recipient, role="admin",
                       signing_key=bob.signing_key, expires="2030-01-01", now="t")
    v3.sign(bob.signing)
    return v2, v3, alice


def test_attack_expired_admin_does_not_count_for_a_change_judged_after_his_expiry() -> None:
    v2, v3, alice = _renewal_by_expired_admin()
    assert v2.transition_problems(v3) == []  # no date: signatures only
    assert v2.transition_problems(v3, datetime.date(2026, 5, 31)) == []  # last valid day
    problems = v2.transition_problems(v3, datetime.date(2026, 6, 1))
    assert len(problems) == 1
    assert "signed by 0 of the previous admins" in problems[0]
    assert "the grant of bob had expired by 2026-06-01" in problems[0]
    assert alice.signing is not None
    v3.sign(alice.signing)  # a valid admin signs it too: it counts
    assert v2.transition_problems(v3, datetime.date(2030, 6, 1)) == []


@pytest.mark.parametrize(("arrivals", "today", "committed_on", "rejected"), [
    (True, datetime.date(2026, 6, 3), datetime.date(2026, 5, 20), True),   # seen arriving late
    (True, datetime.date(2026, 5, 20), datetime.date(2026, 5, 20), False),  # seen in time
    (True, datetime.date(2026, 5, 20), datetime.date(2026, 6, 3), True),   # claims a late day
    (False, datetime.date(2031, 1, 1), datetime.date(2026, 5, 20), False),  # history: its claim
    (False, datetime.date(2031, 1, 1), datetime.date(2026, 6, 3), True),
    (False, None, None, False),  # no date at all: signatures only
])
def test_engine_judges_a_policy_change_on_the_verifiers_date(
        arrivals: bool, today: datetime.date | None, committed_on: datetime.date | None,
        rejected: bool) -> None:
    from dvc_secure.core.verification import engine as E
    from dvc_secure.core.verification.findings import POLICY_UNAUTHORIZED

    v2, v3, _ = _renewal_by_expired_admin()
    verifier = E.HistoryVerifier(today=today, arrivals=arrivals)
    assert verifier.verify(E.Snapshot("c1", (), {}, v2,  # type: ignore[arg-type]
                                      committed_on=datetime.date(2026, 5, 1))) == []
    found = verifier.verify(E.Snapshot("c2", ("c1",), {}, v3,  # type: ignore[arg-type]
                                       committed_on=committed_on))
    assert [f.code for f in found] == ([POLICY_UNAUTHORIZED] if rejected else [])
