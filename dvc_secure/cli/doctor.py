"""``dvc-secure doctor [--fix] [--json]``: the clone's keyring trust state and its repair.

Exit codes: 0 nothing wrong (notes may say what to do next), 1 a problem remains,
2 not a dvc-secure repository. The work is done in ``dvc_secure/services/doctor.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

_MARK = {"ok": "ok     ", "note": "note   ", "problem": "PROBLEM"}


def _version(doc: object) -> str:
    if not isinstance(doc, dict):
        return "-"
    commit = f" at {str(doc['commit'])[:12]}" if doc.get("commit") else ""
    return f"policy version {doc['policy_version']} ({str(doc['digest'])[:12]}…){commit}"


def cmd_doctor(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.doctor import diagnose, repair

    root = Path(find_repo().root)
    state = repair(root) if args.fix else diagnose(root)
    doc = state.to_dict()
    if args.json:
        print(json.dumps(doc, indent=2))
        return state.exit_code
    for label, key in (("trust pin", "pin"), ("workspace", "workspace"), ("HEAD", "head"),
                       ("highest in HEAD's history", "branch_highest"),
                       ("highest on any ref", "highest")):
        print(f"{label:27} {_version(doc[key])}")
    for line in state.fixed:
        print(f"fixed    {line}")
    for check in state.checks:
        print(f"{_MARK.get(check.status, check.status)}  {check.name}: {check.message}")
        if check.fix and check.status != "ok":
            print(f"         fix: {check.fix}")
    return state.exit_code


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="diagnose this clone's keyring trust state (pin, "
                       "workspace, HEAD, history, pending changes, interrupted re-encryption)")
    p.add_argument("--fix", action="store_true",
                   help="apply the safe repairs (never discards a change, never commits)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)
