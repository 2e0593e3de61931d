"""History verification as a small I/O-free state machine (python-tuf style).

Feed revisions parents-first. Each revision is checked on its own (every output sealed,
sidecar bound to its metafile, signature valid under the trust in force at that
revision) and against the chain state inherited from its parents (versions strictly
increase, ``previous`` points at the parents' sidecars, no fork left unresolved at a
merge, no older sidecar replayed, no dataset re-added below a version already seen).
The caller supplies parsed snapshots and gets findings; git, files and clocks stay out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from dvc_secure.core.keys import policy_high_water as policy_hw
from dvc_secure.core.keys.policy_high_water import PolicyMark
from dvc_secure.core.sidecar.model import Sidecar
from dvc_secure.core.verification.findings import (
    BAD_SIGNATURE,
    BEFORE_ADOPTION,
    CHAIN_BROKEN,
    FORK,
    INVALID_SIDECAR,
    KEYRING_REMOVED,
    MISPLACED,
    NO_TRUST,
    ORPHAN,
    POLICY_FORK,
    POLICY_ROLLBACK,
    POLICY_UNAUTHORIZED,
    READER_SIGNED,
    REPLAY,
    ROLLBACK,
    SIDECAR_DELETED,
    SIGNED_AFTER_EXPIRY,
    UNBOUND,
    UNSEALED,
    UNTRUSTED_ROOT,
    UNTRUSTED_SIGNER,
    Finding,
)
from dvc_secure.core.verification.findings import (
    expired_member_findings as expired_member_findings,  # re-exported (moved to findings)
)


class TrustView(Protocol):
    """The policy in force at one revision, as the engine needs it."""

    def sealer_keys(self) -> Mapping[str, bytes]:
        """Key id -> Ed25519 public key of everyone allowed to seal."""
        ...

    def role_of(self, keyid: str) -> str | None:
        """Role of a known signing key id (e.g. 'reader'), None if unknown."""
        ...

    @property
    def policy_id(self) -> str:
        """Digest identifying this exact policy."""
        ...

    policy_version: int

    def transition_problems(self, successor: TrustView, as_of: dt.date | None = None) -> list[str]:
        """Why ``successor`` may not directly follow this policy (empty: it may); admins
        whose grant had expired by ``as_of`` do not count toward its threshold."""
        ...

    def sealer_expiry(self, keyid: str) -> str | None:
        """Last valid day (``YYYY-MM-DD``) of the grant of this signing key, if it has one."""
        ...


@dataclass(frozen=True)
class MetafileState:
    """One DVC metafile at one revision, with its sidecar (if any)."""

    path: str
    outputs: Mapping[str, str]  # output path -> DVC object id
    sidecar: Sidecar | None = None
    sidecar_error: str | None = None
    remotes: Mapping[str, str | None] = field(default_factory=dict)  # output -> `remote:` field


@dataclass(frozen=True)
class Snapshot:
    rev: str
    parents: tuple[str, ...]
    metafiles: Mapping[str, MetafileState]
    trust: TrustView | None
    trust_error: str | None = None
    orphan_sidecars: tuple[str, ...] = ()
    # does this revision hold any dvc-secure file (the keyring, valid or not, or a sidecar)?
    # None: infer it from ``trust``, ``trust_error`` and the sidecars (hand-built snapshots)
    holds_secure_files: bool | None = None
    # the day the revision claims it was committed (git's committer date: author-chosen)
    committed_on: dt.date | None = None

    def marks_adoption(self) -> bool:
        if self.holds_secure_files is not None:
            return self.holds_secure_files
        return self.trust is not None or self.trust_error is not None or \
            bool(self.orphan_sidecars) or any(m.sidecar is not None
                                             for m in self.metafiles.values())


@dataclass(frozen=True)
class Head:
    digest: str
    version: int


@dataclass
class ChainState:
    """What a revision hands to its children: the head sidecar of every dataset, the
    highest version ever seen per dataset (so a deleted dataset cannot come back lower),
    and the highest trust policy on any path to it (so the keyring cannot either), and
    whether dvc-secure was adopted at or below it (see :data:`BEFORE_ADOPTION`)."""

    heads: dict[str, Head] = field(default_factory=dict)
    high_water: dict[str, int] = field(default_factory=dict)
    policy: PolicyMark | None = None
    adopted: bool = True

    def copy(self) -> ChainState:
        return ChainState(dict(self.heads), dict(self.high_water), self.policy, self.adopted)


def _mark(trust: TrustView) -> PolicyMark:
    return PolicyMark(trust.policy_version, trust.policy_id)


class HistoryVerifier:
    """Verifies snapshots in parents-first order; remembers every sidecar it has seen."""

    def __init__(self, root_policy: str | None = None, today: dt.date | None = None,
                 arrivals: bool = True) -> None:
        """``root_policy``: digest the first trust policy in the history must have (pin).
        ``today``: the verifier's date, which decides whether a grant has expired.
        ``arrivals``: judge each sidecar as arriving on ``today`` in the revision that
        introduces it (see :meth:`_expiry_findings`); off for a walk of all history."""
        self.root_policy = root_policy
        self.today = today
        self.arrivals = arrivals
        self.states: dict[str, ChainState] = {}
        # every sidecar seen in this history: digest -> its ``previous`` links
        self.known: dict[str, tuple[str, ...]] = {}
        # trust objects are shared between revisions that did not change the policy, so
        # their key tables and signature results are computed once per policy
        self._keys: dict[int, tuple[TrustView, dict[str, bytes]]] = {}
        self._signed: dict[tuple[str, int], bool] = {}
        self._static: dict[tuple[int, int], tuple[object, object, list[tuple[str, str, str]]]] = {}
        self.trusts: dict[str, TrustView | None] = {}

    def _sealer_keys(self, trust: TrustView) -> dict[str, bytes]:
        hit = self._keys.get(id(trust))
        if hit is None or hit[0] is not trust:
            hit = (trust, dict(trust.sealer_keys()))
            self._keys[id(trust)] = hit
        return hit[1]

    def _validly_signed(self, sc: Sidecar, trust: TrustView) -> bool:
        key = (sc.digest, id(trust))
        ok = self._signed.get(key)
        if ok is None:
            ok = bool(sc.valid_signers(self._sealer_keys(trust)))
            self._signed[key] = ok
        return ok

    def seed(self, rev: str, state: ChainState) -> None:
        """Start from an already verified revision (incremental verification)."""
        self.states[rev] = state

    def seed_known(self, known: Mapping[str, Iterable[str]]) -> None:
        for digest, previous in known.items():
            self.known.setdefault(digest, tuple(previous))

    def verify(self, snap: Snapshot, unchanged: Iterable[str] = ()) -> list[Finding]:
        """Findings of ``snap``; records its chain state for its children.

        ``unchanged``: datasets present at ``snap`` but left out of ``snap.metafiles``
        because their metafile and sidecar are byte-identical to those of its single
        parent. They inherit the parent's head (and high-water mark), which is exactly what
        checking them would record; whether they pass the revision-local checks is the
        caller's to know (the pre-commit hook keeps a content-keyed record of passed checks).
        """
        findings: list[Finding] = []
        parent_states = [self.states[p] for p in snap.parents if p in self.states]
        carried = list(unchanged)
        if carried and len(snap.parents) != 1:
            raise ValueError("only a revision with a single parent can carry datasets over")
        if not snap.marks_adoption() and not any(ps.adopted for ps in parent_states):
            self.trusts[snap.rev] = None
            self.states[snap.rev] = ChainState(adopted=False)
            return [Finding(snap.rev, "", BEFORE_ADOPTION,
                            "before dvc-secure was adopted (no keyring or sidecar here nor "
                            "in any ancestor): outside the verified range",
                            "nothing to do; revisions from the first keyring commit on are "
                            "verified")]
        state = ChainState()
        for ps in parent_states:
            for name, hw in ps.high_water.items():
                state.high_water[name] = max(hw, state.high_water.get(name, 0))

        self.trusts[snap.rev] = snap.trust
        policy_findings, state.policy = self._check_policy(snap)
        findings.extend(policy_findings)
        if snap.trust is None and snap.trust_error is None and \
                any(ps.adopted for ps in parent_states):
            findings.append(Finding(
                snap.rev, ".dvc/secure/keyring.json", KEYRING_REMOVED,
                "the keyring was removed although dvc-secure was adopted below this revision: "
                "nothing here can be verified",
                "git checkout <last good revision> -- .dvc/secure/keyring.json, and commit it"))
        elif snap.trust is None:
            findings.append(Finding(snap.rev, "", NO_TRUST,
                                    f"no valid trust policy: {snap.trust_error or 'missing'}",
                                    "restore .dvc/secure/keyring.json from a trusted revision"))
        for orphan in snap.orphan_sidecars:
            findings.append(Finding(snap.rev, orphan, ORPHAN,
                                    f"sidecar {orphan} has no metafile beside it",
                                    f"git rm {orphan}, or restore its metafile"))

        for name in sorted(snap.metafiles):
            mf = snap.metafiles[name]
            parent_heads = [ps.heads[name] for ps in parent_states if name in ps.heads]
            findings.extend(self._check_metafile(snap, mf, parent_heads, state))
        for sc in (m.sidecar for m in snap.metafiles.values()):
            if sc is not None:
                self.known.setdefault(sc.digest, sc.previous)
        for name in carried:
            for ps in parent_states[:1]:
                if name in ps.heads:
                    state.heads[name] = ps.heads[name]
        self.states[snap.rev] = state
        return findings

    def _inherited_mark(self, parent: str) -> PolicyMark | None:
        st = self.states.get(parent)
        if st is not None and st.policy is not None:
            return st.policy
        trust = self.trusts.get(parent)  # a parent seeded from an older cache
        return _mark(trust) if trust is not None else None

    def _check_policy(self, snap: Snapshot) -> tuple[list[Finding], PolicyMark | None]:
        """A policy never goes below the highest version on any path to it (rollback,
        fork: ``policy_high_water``) and may only change to its direct successor, signed
        by its admins. Returns the findings and the revision's high-water mark."""
        cur = snap.trust
        parents = [self.trusts[p] for p in snap.parents if self.trusts.get(p) is not None]
        hw = policy_hw.step((self._inherited_mark(p) for p in snap.parents),
                            _mark(cur) if cur is not None else None)
        where = ".dvc/secure/keyring.json"
        if cur is not None and not parents and self.root_policy is not None \
                and cur.policy_id != self.root_policy:
            return [Finding(snap.rev, where, UNTRUSTED_ROOT,
                            f"the history starts from trust policy {cur.policy_id[:16]}…, not "
                            f"the pinned root {self.root_policy[:16]}… (history rewritten?)",
                            "fetch the genuine history; only change the pinned root on purpose")], hw.mark
        fix = ("restore .dvc/secure/keyring.json from the last trusted revision; policy changes "
               "need the previous admins' signatures")
        if hw.problem == policy_hw.ROLLBACK:
            assert hw.mark is not None
            return [Finding(snap.rev, where, POLICY_ROLLBACK, hw.detail,
                            f"restore the newest keyring (policy version {hw.mark.version}) and "
                            "commit it: 'git log --oneline -- .dvc/secure/keyring.json', then "
                            "'git checkout <commit with that version> -- .dvc/secure/"
                            "keyring.json'; 'dvc-secure doctor' shows which")], hw.mark
        if hw.problem == policy_hw.FORK:
            return [Finding(snap.rev, where, POLICY_FORK, hw.detail,
                            "keep the version every clone already trusts and make the other "
                            "side's change again on top of it (dvc-secure grant/revoke), so "
                            "it becomes the next version")], hw.mark
        if cur is None or not parents:
            return [], hw.mark
        if any(p is not None and p.policy_id == cur.policy_id for p in parents):
            return [], hw.mark  # unchanged here (a merge may bring a change verified on its branch)
        preds = [p for p in parents if p is not None and p.policy_version == cur.policy_version - 1]
        day = self._policy_day(snap)
        problems = (preds[0].transition_problems(cur, as_of=day) if day else
                    preds[0].transition_problems(cur)) if preds else [
            f"trust policy version jumped to {cur.policy_version}"]
        if not problems:
            return [], hw.mark
        return [Finding(snap.rev, where, POLICY_UNAUTHORIZED,
                        f"trust policy changed without authority: {'; '.join(problems)}",
                        fix)], hw.mark

    def _policy_day(self, snap: Snapshot) -> dt.date | None:
        """The date a policy change new in ``snap`` is judged on (docs/spec/keyring.md,
        "expiry of signers"): the latest of the day its commit claims and, for a change
        this verifier sees arrive (a range, a hook), its own date (``today``)."""
        days = [d for d in (snap.committed_on, self.today if self.arrivals else None) if d]
        return max(days) if days else None

    # --- per metafile ----------------------------------------------------------------------

    def _check_metafile(self, snap: Snapshot, mf: MetafileState, parent_heads: list[Head],
                        state: ChainState) -> list[Finding]:
        sc = mf.sidecar
        if sc is not None and len(parent_heads) == 1 and parent_heads[0].digest == sc.digest:
            # unchanged since the parent: only the revision-local checks can differ, and
            # those depend on nothing but (metafile state, trust) -> memoise them
            key = (id(mf), id(snap.trust))
            hit = self._static.get(key)
            if hit is None or hit[0] is not mf or hit[1] is not snap.trust:
                found = self._check_metafile_full(snap, mf, parent_heads, state)
                self._static[key] = (mf, snap.trust, [(f.code, f.message, f.fix) for f in found])
                return found
            state.heads[mf.path] = parent_heads[0]
            state.high_water[mf.path] = max(state.high_water.get(mf.path, 0), sc.version)
            return [Finding(snap.rev, mf.path, c, m, x) for c, m, x in hit[2]]
        return self._check_metafile_full(snap, mf, parent_heads, state)

    def _check_metafile_full(self, snap: Snapshot, mf: MetafileState, parent_heads: list[Head],
                             state: ChainState) -> list[Finding]:
        rev, name = snap.rev, mf.path
        out: list[Finding] = []
        seal_cmd = f"dvc-secure seal {name}"

        def finding(code: str, message: str, fix: str) -> None:
            out.append(Finding(rev, name, code, message, fix))

        sc = mf.sidecar
        if sc is None:
            if mf.sidecar_error:
                finding(INVALID_SIDECAR, f"sidecar of {name} is unreadable: {mf.sidecar_error}",
                        f"restore it from the last good revision, or re-seal: {seal_cmd}")
            elif parent_heads:
                finding(SIDECAR_DELETED,
                        f"the sidecar of {name} (version {max(h.version for h in parent_heads)}) "
                        "was deleted while the dataset is still tracked",
                        f"git checkout HEAD~1 -- {name}.seal, or re-seal: {seal_cmd}")
            elif mf.outputs:
                finding(UNSEALED, f"{name} tracks data but has no sealed sidecar", seal_cmd)
            # keep the inherited head so later revisions are still checked against it
            for h in parent_heads[:1]:
                state.heads[name] = h
            return out

        if sc.metafile != name:
            finding(MISPLACED, f"the sidecar beside {name} was sealed for {sc.metafile}",
                    f"restore the right sidecar or re-seal: {seal_cmd}")

        if snap.trust is not None:
            keys = self._sealer_keys(snap.trust)
            if not self._validly_signed(sc, snap.trust):
                role = snap.trust.role_of(sc.signer_keyid)
                if role is not None and sc.signer_keyid not in keys:
                    finding(READER_SIGNED,
                            f"version {sc.version} of {name} is signed by key {sc.signer_keyid}, "
                            f"whose role '{role}' may not seal",
                            f"a writer must re-seal: {seal_cmd}")
                elif sc.signer_keyid in keys:
                    finding(BAD_SIGNATURE,
                            f"the signature on version {sc.version} of {name} does not verify "
                            "(the sidecar was edited after sealing)",
                            f"restore the sidecar from git history or re-seal: {seal_cmd}")
                else:
                    finding(UNTRUSTED_SIGNER,
                            f"version {sc.version} of {name} is signed by key {sc.signer_keyid}, "
                            "which the trust policy at this revision does not list",
                            f"re-seal with a listed writer's identity: {seal_cmd}")
            else:
                new = sc.digest not in {h.digest for h in parent_heads}
                for code, message in self._expiry_findings(sc, snap.trust, new):
                    finding(code, message,
                            f"a writer whose grant is valid re-seals: {seal_cmd} (an admin "
                            "renews the grant with 'dvc-secure grant … --expires', or drops "
                            "the member with 'dvc-secure rotate')")

        sealed = {o.path: o.oid for o in sc.outputs}
        if sealed != dict(mf.outputs):
            changed = sorted(set(sealed.items()) ^ set(mf.outputs.items()))
            paths = sorted({p for p, _ in changed})
            finding(UNBOUND,
                    f"{name} was changed without re-sealing (outputs {', '.join(paths)} differ "
                    f"from sidecar version {sc.version})",
                    f"if the change is intended: {seal_cmd}; otherwise git checkout -- {name}")
        for o in sc.outputs:
            declared = mf.remotes.get(o.path)
            if declared is not None and declared != o.remote:
                finding(UNBOUND,
                        f"{name} sends output {o.path} to remote '{declared}', but it was sealed "
                        f"for '{o.remote}'",
                        f"remove the remote: field or re-seal: {seal_cmd}")

        out.extend(self._check_chain(rev, name, sc, parent_heads, state, seal_cmd))
        state.heads[name] = Head(sc.digest, sc.version)
        state.high_water[name] = max(state.high_water.get(name, 0), sc.version)
        return out

    def _expiry_findings(self, sc: Sidecar, trust: TrustView,
                         new: bool) -> list[tuple[str, str]]:
        """A sidecar by a member whose grant expired. The sealing time is written by the
        signer, who can set their clock back, so: (1) a sidecar that *claims* a sealing day
        after the expiry fails wherever it is; (2) a sidecar that first appears in this
        revision is judged as arriving on the verifier's date (``today``): after the
        expiry it fails whatever it claims. History the verifier did not see arrive (below
        a range, or a walk of all history) keeps what it claims."""
        expires = trust.sealer_expiry(sc.signer_keyid)
        if expires is None:
            return []
        try:
            last = dt.date.fromisoformat(expires)
            claimed = dt.date.fromisoformat(sc.sealed_at[:10])
        except ValueError:
            return [(SIGNED_AFTER_EXPIRY, f"version {sc.version} of {sc.metafile} has an "
                     f"unreadable sealing or expiry date ({sc.sealed_at!r}, {expires!r})")]
        if claimed > last:
            return [(SIGNED_AFTER_EXPIRY,
                     f"version {sc.version} of {sc.metafile} was sealed on {claimed} by key "
                     f"{sc.signer_keyid}, whose grant expired on {expires}")]
        if new and self.arrivals and self.today is not None and self.today > last:
            return [(SIGNED_AFTER_EXPIRY,
                     f"version {sc.version} of {sc.metafile} is new here and signed by key "
                     f"{sc.signer_keyid}, whose grant expired on {expires} (today is "
                     f"{self.today} for this verifier; the sealing time it claims, "
                     f"{sc.sealed_at}, comes from the signer's own clock)")]
        return []

    def _descends_from(self, previous: Iterable[str], ancestor: str, limit: int) -> bool:
        """Is ``ancestor`` reachable from these ``previous`` links?"""
        stack, seen = list(previous), set[str]()
        while stack and len(seen) < limit:
            d = stack.pop()
            if d == ancestor:
                return True
            if d in seen:
                continue
            seen.add(d)
            stack.extend(self.known.get(d, ()))
        return False

    def _check_chain(self, rev: str, name: str, sc: Sidecar, parent_heads: list[Head],
                     state: ChainState, seal_cmd: str) -> list[Finding]:
        out: list[Finding] = []
        high = state.high_water.get(name, 0)
        distinct = {h.digest: h for h in parent_heads}
        limit = 100_000

        if sc.digest in distinct:
            # unchanged from a parent; at a merge the other side must be an ancestor of it
            for d, h in distinct.items():
                if d == sc.digest or self._descends_from(sc.previous, d, limit):
                    continue
                if self._descends_from(self.known.get(d, ()), sc.digest, limit):
                    out.append(Finding(
                        rev, name, ROLLBACK,
                        f"the merge kept version {sc.version} of {name} and dropped the newer "
                        f"version {h.version} from the other parent",
                        f"re-seal at the merge: {seal_cmd}"))
                else:
                    out.append(Finding(
                        rev, name, FORK,
                        f"branches sealed {name} independently (version {h.version} and "
                        f"version {sc.version}) and the merge kept one side without re-sealing",
                        f"re-seal at the merge so version {max(h.version, sc.version) + 1} "
                        f"covers both: {seal_cmd}"))
            return out

        if sc.digest in self.known and sc.version <= high:
            out.append(Finding(
                rev, name, REPLAY,
                f"an older sidecar of {name} (version {sc.version}) was put back while version "
                f"{high} had already been sealed (revert or replay)",
                f"to return to old data, seal a new version: dvc-secure restore "
                f"{name.removesuffix('.dvc')} --version {sc.version}"))
            return out
        if sc.version <= high:
            out.append(Finding(
                rev, name, ROLLBACK,
                f"version of {name} went from {high} to {sc.version}: versions must strictly "
                "increase along history",
                f"re-seal on top of the current version: {seal_cmd}"))
            return out
        expected = sorted(distinct)
        if parent_heads and sorted(sc.previous) != expected:
            out.append(Finding(
                rev, name, CHAIN_BROKEN,
                f"version {sc.version} of {name} does not chain to the sidecar(s) of its parent "
                "revision(s)",
                f"re-seal on top of the current version: {seal_cmd}"))
        elif not parent_heads and sc.previous and not all(p in self.known for p in sc.previous):
            out.append(Finding(
                rev, name, CHAIN_BROKEN,
                f"version {sc.version} of {name} chains to sidecars this history never had",
                f"re-seal: {seal_cmd}"))
        elif parent_heads and sc.version != max(h.version for h in parent_heads) + 1:
            out.append(Finding(
                rev, name, ROLLBACK,
                f"version of {name} jumped from {max(h.version for h in parent_heads)} to "
                f"{sc.version}: each seal adds exactly one",
                f"re-seal on top of the current version: {seal_cmd}"))
        return out
