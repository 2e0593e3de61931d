"""The pure high-water state machine for keyring policy versions (core/keys/policy_high_water)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dvc_secure.core.keys.policy_high_water import (
    FORK,
    ROLLBACK,
    PolicyMark,
    high_water,
    join,
    step,
)

V1, V2, V3 = PolicyMark(1, "a1"), PolicyMark(2, "a2"), PolicyMark(3, "a3")
V2_OTHER = PolicyMark(2, "b2")


def test_versions_moving_forward_are_fine() -> None:
    steps = high_water([("c1", (), V1), ("c2", ("c1",), V2), ("c3", ("c2",), V3),
                        ("c4", ("c3",), V3)])
    assert [s.problem for s in steps.values()] == [None, None, None, None]
    assert steps["c4"].mark == V3


def test_merge_ours_keeping_the_older_keyring_is_a_rollback() -> None:
    # main: v1 -> v2 (grant bob) -> v3 (revoke bob); attacker: merge -s ours from the v2 commit
    steps = high_water([("c1", (), V1), ("c2", ("c1",), V2), ("c3", ("c2",), V3),
                        ("m", ("c2", "c3"), V2)])
    assert steps["m"].problem == ROLLBACK
    assert "version 3" in steps["m"].detail and "version 2" in steps["m"].detail
    assert steps["m"].mark == V3  # the mark never goes down ...
    child = step([steps["m"].mark], V2)
    assert child.problem == ROLLBACK  # ... so every later revision on it is reported too
    assert step([steps["m"].mark], V3).problem is None  # until the newest keyring is restored


def test_same_version_with_other_content_is_a_fork() -> None:
    assert step([V2], V2_OTHER).problem == FORK
    at_merge = step([V2, V2_OTHER], V2)
    assert at_merge.problem == FORK and "dropped" in at_merge.detail
    assert step([V2, V2_OTHER], V3).problem is None  # a new version above both resolves it


def test_no_policy_carries_the_mark_and_first_policy_starts_it() -> None:
    assert step([V2], None) == step([V2], None)
    assert step([V2], None).mark == V2 and step([V2], None).problem is None
    assert step([], V1).mark == V1
    assert join([None, None]) == (None, [])


# --- property: along any DAG of revisions --------------------------------------------------

_POLICIES = st.one_of(st.none(), st.builds(PolicyMark, st.integers(1, 4),
                                           st.sampled_from(["x", "y"])))


@st.composite
def _histories(draw: st.DrawFn) -> list[tuple[str, tuple[str, ...], PolicyMark | None]]:
    n = draw(st.integers(1, 10))
    out: list[tuple[str, tuple[str, ...], PolicyMark | None]] = []
    for i in range(n):
        parents: tuple[str, ...] = ()
        if i:
            chosen = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True))
            parents = tuple(f"c{j}" for j in chosen)
        out.append((f"c{i}", parents, draw(_POLICIES)))
    return out


def _ancestors(history: list[tuple[str, tuple[str, ...], PolicyMark | None]],
               rev: str) -> set[str]:
    parents = {r: p for r, p, _ in history}
    seen: set[str] = set()
    stack = list(parents[rev])
    while stack:
        r = stack.pop()
        if r not in seen:
            seen.add(r)
            stack.extend(parents[r])
    return seen


@settings(max_examples=300, deadline=None)
@given(_histories())
def test_a_rollback_is_reported_exactly_where_a_version_is_below_an_ancestor(
        history: list[tuple[str, tuple[str, ...], PolicyMark | None]]) -> None:
    steps = high_water(history)
    policy = {r: m for r, _, m in history}
    for rev, _, cur in history:
        above = [policy[a] for a in _ancestors(history, rev) if policy[a] is not None]
        versions = [m.version for m in above if m is not None]
        highest = max(versions + ([cur.version] if cur else []), default=None)
        s = steps[rev]
        # the mark is the highest version on any path to the revision, itself included
        assert (s.mark.version if s.mark else None) == highest
        below = cur is not None and bool(versions) and cur.version < max(versions)
        assert (s.problem == ROLLBACK) == below
        if cur is not None and all(m is None or m.version < cur.version or m == cur
                                   for m in above):
            assert s.problem is None  # the newest version, the same content on every path


# --- the verification engine applies it at every revision (real keyrings) -------------------


def _chain(n: int, fork_at: int | None = None) -> list:  # type: ignore[type-arg]
    """Policy versions 1..n signed by one admin; with ``fork_at``, also a second, different
    version ``fork_at`` (validly signed successor of the same predecessor) at the end."""
    from dvc_secure.core.keys.identity import Identity
    from dvc_secure.core.keys.keyring import Keyring

    admin = Identity.generate()
    assert admin.signing is not None
    rings = [Keyring.create(admin, "admin", "t")]
    for _ in range(n - 1):
        nxt = rings[-1].successor()
        nxt.sign(admin.signing)
        rings.append(nxt)
    if fork_at is not None:
        fork = rings[fork_at - 2].successor()
        fork.unknown["note"] = "another version with the same number"
        fork.sign(admin.signing)
        rings.append(fork)
    return rings


def _snap(rev: str, parents: tuple[str, ...], ring: object):  # type: ignore[no-untyped-def]
    from dvc_secure.core.keys.keyring import Keyring
    from dvc_secure.core.verification import engine as E

    assert isinstance(ring, Keyring)
    return E.Snapshot(rev, parents, {}, Keyring.from_json(ring.to_json()))


def test_engine_reports_merge_ours_keeping_the_older_parents_keyring() -> None:
    from dvc_secure.core.verification import engine as E
    from dvc_secure.core.verification import findings as F

    v1, v2, v3 = _chain(3)
    v = E.HistoryVerifier()
    for rev, parents, ring in (("c1", (), v1), ("c2", ("c1",), v2), ("c3", ("c2",), v3)):
        assert v.verify(_snap(rev, parents, ring)) == []
    # the merge keeps c2's keyring (one parent has the same keyring: the old check passed it)
    (f,) = v.verify(_snap("m", ("c2", "c3"), v2))
    assert f.code == F.POLICY_ROLLBACK and "version 3" in f.message and "version 2" in f.message
    # the next commit on top still runs below the mark; restoring version 3 clears it
    assert [x.code for x in v.verify(_snap("n", ("m",), v2))] == [F.POLICY_ROLLBACK]
    assert v.verify(_snap("fixed", ("n",), v3)) == []
    # the mark survives the verify cache (it is part of the chain state)
    assert v.states["m"].policy is not None and v.states["m"].policy.version == 3


def test_engine_reports_two_keyrings_of_the_same_version_as_a_fork() -> None:
    from dvc_secure.core.verification import engine as E
    from dvc_secure.core.verification import findings as F

    v1, v2, fork = _chain(2, fork_at=2)
    assert fork.policy_version == 2 and fork.digest != v2.digest
    v = E.HistoryVerifier()
    v.verify(_snap("c1", (), v1))
    assert v.verify(_snap("a", ("c1",), v2)) == []
    assert v.verify(_snap("b", ("c1",), fork)) == []  # each branch on its own is valid
    assert [x.code for x in v.verify(_snap("m", ("a", "b"), v2))] == [F.POLICY_FORK]
    assert [x.code for x in v.verify(_snap("n", ("a",), fork))] == [F.POLICY_FORK]
