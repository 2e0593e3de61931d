"""Verification caches in the git directory (never committed, never pushed, so someone
with only push access cannot write them; a damaged file is ignored; CI normally starts
without them and verifies everything).

* :class:`VerifyCache`: chain states of recently verified commits, so verifying a new
  commit on top of an already verified history does not walk that history again.
* :class:`CheckCache`: revision-local checks that passed, keyed by content (blob ids), so
  the pre-commit hook re-checks only the datasets a commit changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from dvc_secure.core.keys.policy_high_water import PolicyMark
from dvc_secure.core.verification.engine import ChainState, Head, HistoryVerifier


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a cache: never worth failing a verification over


def _state(doc: Any) -> ChainState:
    policy = doc.get("policy")  # absent in caches written before the policy high-water mark
    return ChainState({k: Head(v[0], int(v[1])) for k, v in doc["heads"].items()},
                      {k: int(v) for k, v in doc["high_water"].items()},
                      PolicyMark(int(policy[0]), str(policy[1])) if policy else None,
                      bool(doc["adopted"]))


def _state_doc(st: ChainState) -> dict[str, Any]:
    doc: dict[str, Any] = {"heads": {k: [h.digest, h.version] for k, h in st.heads.items()},
                           "high_water": st.high_water, "adopted": st.adopted}
    if st.policy is not None:
        doc["policy"] = [st.policy.version, st.policy.digest]
    return doc


def staged_key(tree: str, parents: list[str]) -> str:
    return f"{tree}:{','.join(parents)}"


class VerifyCache:
    """Chain states of recently verified commits (see the module docstring), and of staged
    trees the pre-commit hook verified, keyed by (tree, parents): a commit of that tree on
    those parents has exactly that state, so the next commit's hook starts from it. The
    sidecars a staged tree adds are kept with it, and join ``known`` only once a commit of
    that tree is seen (an abandoned commit must not make its sidecars look like history)."""

    VERSION = 3  # 2: the policy high-water mark; 3: and whether dvc-secure was adopted
    KEEP = 64
    KEEP_STAGED = 16

    def __init__(self, git_dir: Path) -> None:
        self.path = git_dir / "dvc-secure" / "verify-cache.json"
        self.states: dict[str, ChainState] = {}
        self.known: dict[str, list[str]] = {}
        self.staged: dict[str, tuple[ChainState, dict[str, list[str]]]] = {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("version") == self.VERSION:
                for rev, st in doc["states"].items():
                    self.states[rev] = _state(st)
                self.known = {k: list(v) for k, v in doc["known"].items()}
                for key, st in doc.get("staged", {}).items():
                    self.staged[key] = (_state(st["state"]),
                                        {k: list(v) for k, v in st["known"].items()})
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            self.states, self.known, self.staged = {}, {}, {}

    def save(self, verifier: HistoryVerifier, revs: list[str],
             staged: tuple[str, str] | None = None) -> None:
        """Keep the states of ``revs`` and what ``verifier`` knows; or, with ``staged`` =
        (key, label): the state of a verified staged tree, apart from the history."""
        if staged is None:
            for rev in revs:
                if rev in verifier.states:
                    self.states.pop(rev, None)
                    self.states[rev] = verifier.states[rev]
            self.known = {k: list(v) for k, v in verifier.known.items()}
        elif staged[1] in verifier.states:
            extra = {k: list(v) for k, v in verifier.known.items() if k not in self.known}
            self.staged.pop(staged[0], None)
            self.staged[staged[0]] = (verifier.states[staged[1]], extra)
        keep = list(self.states.items())[-self.KEEP:]
        _write_json(self.path, {
            "version": self.VERSION,
            "states": {rev: _state_doc(st) for rev, st in keep},
            "known": self.known,
            "staged": {k: {"state": _state_doc(st), "known": extra}
                       for k, (st, extra) in list(self.staged.items())[-self.KEEP_STAGED:]},
        })


# what the hook needs of a dataset it does not re-check: its classification and, per
# output, the remote its metafile declares (for the "protected data to a plain remote" check)
CheckedInfo = tuple[str, list[tuple[str, "str | None"]]]


def check_key(path: str, metafile_blob: str, sidecar_blob: str, keyring_blob: str) -> str:
    return hashlib.sha256(
        f"{path}\0{metafile_blob}\0{sidecar_blob}\0{keyring_blob}".encode()).hexdigest()[:40]


class CheckCache:
    """(metafile path, metafile blob, sidecar blob, keyring blob) whose revision-local checks
    (sidecar parses, is bound to the metafile, validly signed by a sealer of that keyring)
    found nothing, plus keyring blobs whose admin signatures verified. Entries are written
    only after such a check passed: a missing entry just means checking again."""

    VERSION = 1
    KEEP = 8192

    def __init__(self, git_dir: Path) -> None:
        self.path = git_dir / "dvc-secure" / "checked.json"
        self.entries: dict[str, CheckedInfo] = {}
        self.keyrings: list[str] = []
        self._dirty = False
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("version") == self.VERSION:
                for key, (cls, outs) in doc["entries"].items():
                    self.entries[str(key)] = (str(cls), [(str(o), None if r is None else str(r))
                                                         for o, r in outs])
                self.keyrings = [str(k) for k in doc["keyrings"]]
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            self.entries, self.keyrings = {}, []

    def get(self, key: str) -> CheckedInfo | None:
        return self.entries.get(key)

    def add(self, key: str, info: CheckedInfo) -> None:
        if self.entries.get(key) != info:
            self.entries.pop(key, None)
            self.entries[key] = info
            self._dirty = True

    def add_keyrings(self, blobs: set[str]) -> None:
        new = sorted(blobs - set(self.keyrings))
        if new:
            self.keyrings = (self.keyrings + new)[-64:]
            self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        keep = list(self.entries.items())[-self.KEEP:]
        _write_json(self.path, {"version": self.VERSION, "keyrings": self.keyrings,
                                "entries": {k: [c, [list(x) for x in o]] for k, (c, o) in keep}})
        self._dirty = False
