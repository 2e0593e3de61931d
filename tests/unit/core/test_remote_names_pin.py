"""The ``names`` member of a pinned secure remote (docs/spec/keyring.md §4b,
docs/spec/hidden-names.md §1 and §9): parsing, MUST-reject rules, assignment, migration."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dvc_secure.core.keys.remote_policy import (
    RemotePolicy,
    assign_names,
    mark_names_migrated,
)
from dvc_secure.errors import KeyringError

VAULT: dict[str, Any] = {"name": "vault", "wraps": "storage", "subpath": "", "url": "../s",
                         "hide_names": True, "allow_gc_sealed": False}
BACKUP: dict[str, Any] = {**VAULT, "name": "backup", "wraps": "backup-store", "url": "/b"}
NAMES = {"scheme": 2, "id": "00" * 16, "legacy": False}


def _policy(*pins: dict[str, Any]) -> dict[str, Any]:
    return {"default": "vault", "secure": list(pins)}


def test_names_round_trip_with_unknown_members() -> None:
    doc = _policy({**VAULT, "names": {**NAMES, "future": [1]}}, BACKUP)
    policy = RemotePolicy.from_dict(copy.deepcopy(doc))
    assert policy.to_dict() == doc
    vault = policy.pin("vault")
    assert vault is not None and vault.names is not None and vault.names.id_bytes == bytes(16)
    assert policy.pin("backup").names is None  # type: ignore[union-attr]  # scheme 1


@pytest.mark.parametrize(("names", "why"), [
    ({**NAMES, "scheme": 3}, "scheme 3"),
    ({**NAMES, "scheme": 1}, "scheme 1"),  # scheme 1 is written as the absence of 'names'
    ({**NAMES, "scheme": True}, "integer"),
    ({**NAMES, "id": "00" * 15}, "32 lowercase hex"),
    ({**NAMES, "id": "AA" * 16}, "32 lowercase hex"),
    ({k: v for k, v in NAMES.items() if k != "legacy"}, "legacy"),
    ({**NAMES, "legacy": "no"}, "legacy"),
    (None, "must be an object"),
])
def test_names_must_reject(names: Any, why: str) -> None:
    with pytest.raises(KeyringError, match=why):
        RemotePolicy.from_dict(_policy({**VAULT, "names": names}))


def test_two_remotes_with_one_name_id_rejected() -> None:
    with pytest.raises(KeyringError, match=r"same names\.id"):
        RemotePolicy.from_dict(_policy({**VAULT, "names": NAMES}, {**BACKUP, "names": NAMES}))


def _ids() -> Any:
    counter = iter(range(1, 100))
    return lambda: f"{next(counter):032x}"


def test_assign_names_fresh_keyring_has_no_legacy_names() -> None:
    policy = assign_names(RemotePolicy.from_dict(_policy(VAULT, BACKUP)), None, fresh=True,
                          new_id=_ids())
    assert [(p.names.id, p.names.legacy) for p in policy.secure] == [  # type: ignore[union-attr]
        (f"{1:032x}", False), (f"{2:032x}", False)]


def test_assign_names_keeps_ids_and_marks_scheme1_remotes_legacy() -> None:
    old = RemotePolicy.from_dict(_policy({**VAULT, "names": NAMES}, BACKUP))
    now = RemotePolicy.from_dict(_policy(VAULT, BACKUP, {**BACKUP, "name": "third",
                                                           "wraps": "t"}))
    new = assign_names(now, old, fresh=False, new_id=_ids())
    names = {p.name: p.names for p in new.secure}
    assert names["vault"] == old.pin("vault").names  # type: ignore[union-attr]  # kept
    assert names["backup"].legacy  # type: ignore[union-attr]  # pinned under scheme 1
    assert not names["third"].legacy  # type: ignore[union-attr]  # new to a pinned policy
    # a repository whose keyring pinned nothing: every remote may hold scheme-1 names
    unpinned = assign_names(now, None, fresh=False, new_id=_ids())
    assert all(p.names.legacy for p in unpinned.secure)  # type: ignore[union-attr]
    assert new.configuration() == now  # what .dvc/config is compared with


def test_mark_names_migrated() -> None:
    policy = assign_names(RemotePolicy.from_dict(_policy(VAULT, BACKUP)), None, fresh=False,
                          new_id=_ids())
    done = mark_names_migrated(policy, ["backup"])
    assert done.pin("vault").names.legacy and not done.pin("backup").names.legacy  # type: ignore[union-attr]
    with pytest.raises(KeyringError, match="'nope'"):
        mark_names_migrated(policy, ["nope"])
