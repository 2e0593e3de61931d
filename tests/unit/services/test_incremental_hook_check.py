"""What lets the pre-commit hook re-check only changed datasets: the engine's carry-over
of unchanged datasets and the content-keyed record of passed checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvc_secure.adapters.git.verify_cache import CheckCache, VerifyCache, check_key
from dvc_secure.core.sidecar.model import Sidecar
from dvc_secure.core.verification import engine as E
from dvc_secure.core.verification import findings as F
from tests.unit.core.test_verification_engine import TRUST, seal


def _mf(name: str, sc: Sidecar) -> E.MetafileState:
    return E.MetafileState(name, {"data": sc.outputs[0].oid}, sc)


def _two_datasets() -> tuple[E.HistoryVerifier, Sidecar, Sidecar]:
    v = E.HistoryVerifier()
    a1 = seal("a" * 32, 1, metafile="a.dvc")
    b1 = seal("b" * 32, 1, metafile="b.dvc")
    root = E.Snapshot("r1", (), {"a.dvc": _mf("a.dvc", a1), "b.dvc": _mf("b.dvc", b1)}, TRUST)
    assert v.verify(root) == []
    return v, a1, b1


def test_carried_dataset_state_equals_full_check() -> None:
    full, a1, b1 = _two_datasets()
    part, _, _ = _two_datasets()
    a2 = seal("c" * 32, 2, (a1.digest,), metafile="a.dvc")
    both = {"a.dvc": _mf("a.dvc", a2), "b.dvc": _mf("b.dvc", b1)}
    assert full.verify(E.Snapshot("r2", ("r1",), both, TRUST)) == []
    only_a = {"a.dvc": _mf("a.dvc", a2)}
    assert part.verify(E.Snapshot("r2", ("r1",), only_a, TRUST), unchanged=["b.dvc"]) == []
    assert part.states["r2"] == full.states["r2"]


def test_rollback_of_changed_dataset_still_caught_with_others_carried() -> None:
    v, a1, _ = _two_datasets()
    a2 = seal("c" * 32, 2, (a1.digest,), metafile="a.dvc")
    assert v.verify(E.Snapshot("r2", ("r1",), {"a.dvc": _mf("a.dvc", a2)}, TRUST),
                    unchanged=["b.dvc"]) == []
    back = E.Snapshot("r3", ("r2",), {"a.dvc": _mf("a.dvc", a1)}, TRUST)
    codes = {f.code for f in v.verify(back, unchanged=["b.dvc"])}
    assert F.REPLAY in codes


def test_carry_over_at_a_merge_is_refused() -> None:
    v, a1, _ = _two_datasets()
    with pytest.raises(ValueError):
        v.verify(E.Snapshot("m", ("r1", "x"), {"a.dvc": _mf("a.dvc", a1)}, TRUST),
                 unchanged=["b.dvc"])


def test_check_cache_round_trip_and_damage(tmp_path: Path) -> None:
    cache = CheckCache(tmp_path)
    key = check_key("a.dvc", "1" * 40, "2" * 40, "3" * 40)
    assert key != check_key("a.dvc", "1" * 40, "2" * 40, "4" * 40)  # another keyring
    assert key != check_key("b.dvc", "1" * 40, "2" * 40, "3" * 40)  # another path
    cache.add(key, ("confidential", [("data", None), ("more", "vault")]))
    cache.add_keyrings({"3" * 40})
    cache.save()
    again = CheckCache(tmp_path)
    assert again.get(key) == ("confidential", [("data", None), ("more", "vault")])
    assert again.keyrings == ["3" * 40]
    cache.path.write_text("{not json")
    assert CheckCache(tmp_path).get(key) is None
    assert VerifyCache(tmp_path).states == {}


def test_abandoned_staged_sidecar_does_not_join_known_history(tmp_path: Path) -> None:
    v, a1, _ = _two_datasets()
    cache = VerifyCache(tmp_path)
    cache.save(v, ["r1"])
    a2 = seal("c" * 32, 2, (a1.digest,), metafile="a.dvc")
    assert v.verify(E.Snapshot("(staged)", ("r1",), {"a.dvc": _mf("a.dvc", a2)}, TRUST),
                    unchanged=["b.dvc"]) == []
    cache.save(v, [], staged=("tree:r1", "(staged)"))
    again = VerifyCache(tmp_path)
    assert a2.digest not in again.known  # the commit may never happen
    state, extra = again.staged["tree:r1"]
    assert state == v.states["(staged)"] and a2.digest in extra
    assert again.states["r1"] == v.states["r1"]
