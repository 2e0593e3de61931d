"""The keyring's policy version never goes down along any path of history (TUF's rule).

A small I/O-free state machine (python-tuf style), fed with the policy at each revision
parents-first by whoever walks the history (the verification engine over git commits, the
trust loader of a fresh clone). Each revision inherits the *high-water mark* of its
parents — the highest (policy version, digest) seen on any path to it — and may only keep
it or move above it:

- a lower version than the mark: a **rollback** (e.g. ``git merge -s ours`` that keeps an
  older parent's keyring, or a revert of a revocation);
- the same version with other content than the mark: a **fork** (two different keyrings
  both claim to be version N); at a merge, two parents whose marks are the same version
  with different digests are a fork unless the merge moves above both.

Whether a *higher* version is a valid successor (signatures, ``previous``) is checked
elsewhere (``Keyring.transition_problems``); this module only orders versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ROLLBACK = "rollback"
FORK = "fork"


@dataclass(frozen=True, order=True)
class PolicyMark:
    """One policy version as history saw it."""

    version: int
    digest: str

    def describe(self) -> str:
        return f"version {self.version} ({self.digest[:12]}…)"


@dataclass(frozen=True)
class Step:
    """What one revision does to the mark: its new mark, and a problem (None: fine)."""

    mark: PolicyMark | None
    problem: str | None = None  # ROLLBACK or FORK
    detail: str = ""


def join(marks: Iterable[PolicyMark | None]) -> tuple[PolicyMark | None, list[PolicyMark]]:
    """The high-water mark of several histories (a merge's parents), and every other mark
    of that same version with a different digest (a fork between the parents)."""
    present = [m for m in marks if m is not None]
    if not present:
        return None, []
    top = max(m.version for m in present)
    tops = sorted({m for m in present if m.version == top})
    return tops[0], tops[1:]


def step(inherited: Iterable[PolicyMark | None], current: PolicyMark | None) -> Step:
    """Advance the mark over one revision whose policy is ``current`` (None: no valid
    policy there; reported elsewhere, the mark is carried on unchanged)."""
    high, others = join(inherited)
    if current is None:
        return Step(high)
    if high is None or current.version > high.version:
        return Step(current)
    if current.version < high.version:
        return Step(high, ROLLBACK,
                    f"trust policy went down from {high.describe()} to "
                    f"{current.describe()}: a version never goes down along history")
    candidates = [high, *others]
    if current not in candidates:
        return Step(high, FORK,
                    f"trust policy {current.describe()} differs from {high.describe()} "
                    "that history already holds (two different keyrings claim the same version)")
    if others:
        dropped = [m for m in candidates if m != current]
        return Step(current, FORK,
                    f"the merge kept trust policy {current.describe()} and dropped "
                    f"{', '.join(m.describe() for m in dropped)} of the other side (a forked "
                    "policy)")
    return Step(current)


def high_water(history: Iterable[tuple[str, tuple[str, ...], PolicyMark | None]]
               ) -> dict[str, Step]:
    """Run :func:`step` over ``(rev, parents, policy)`` given parents-first; returns each
    revision's step (its mark and problem). Parents not in ``history`` are ignored."""
    out: dict[str, Step] = {}
    for rev, parents, current in history:
        out[rev] = step((out[p].mark for p in parents if p in out), current)
    return out
