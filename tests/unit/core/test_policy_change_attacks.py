"""Pure rules behind keyring changes that issue 13 item 6 found attackable: an expired admin
may not change or approve the keyring; an approving admin sees what the change does."""

from __future__ import annotations

import datetime

import pytest

from dvc_secure.core.keys import policy_changes as changes
from dvc_secure.core.keys.keyring import Member
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
    from dvc_secure.core.keys.identity import Identity
    from dvc_secure.core.keys.keyring import Keyring

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
