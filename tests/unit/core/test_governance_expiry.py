"""An admin whose grant expired may not change or approve the keyring (issue 13 item 6):
the pure rule behind ``dvc-secure grant/revoke/rotate/threshold/remote-policy/approve``."""

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
