"""``dvc-secure shred``, ``retention``, ``hold`` and ``seal --domain``: shells around
services/erasure.py and services/retention.py (docs/erasure.md).

Exit codes: 0 done; 1 something is overdue (``retention``) or the erasure is incomplete;
2 usage, configuration, or a refusal (legal hold, not an admin).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FINDINGS = 0, 1


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def into_domain(root: Path, args: argparse.Namespace, access: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``seal --domain D``: move the datasets' objects into D on every secure remote, then
    seal them with ``domain: D`` in the signed access metadata."""
    from dvc_secure.adapters.git.snapshots import normalise_metafile
    from dvc_secure.core.format.domain_keys import check_domain_name
    from dvc_secure.errors import ErasureError
    from dvc_secure.services.erasure import move_into_domain

    domain = check_domain_name(args.domain)
    if not args.targets:
        raise ErasureError("seal --domain needs the datasets to put into the domain",
                           hint=f"dvc-secure seal data/x.dvc --domain {domain}")
    move_into_domain(root, [normalise_metafile(t) for t in args.targets], domain, progress=_say)
    return lambda a: dataclasses.replace(access(a), domain=domain)


def cmd_shred(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.errors import DvcSecureError
    from dvc_secure.services.audit_recorder import record_event
    from dvc_secure.services.erasure import pulled_by, shred

    repo = find_repo()
    result = shred(repo.root, args.domain, args.reason or "", progress=_say)
    rec = result.record
    record_event(repo.root, "shred", datasets=sorted(rec.datasets),
                 details={"domain": rec.domain, "record": rec.record_id,
                          "remotes": list(rec.remotes), "reason": rec.reason})
    print(f"shredded key domain '{rec.domain}'{' (resumed)' if result.resumed else ''}: "
          f"{rec.describe()}")
    for name in rec.remotes:
        print(f"  {name}: {result.destroyed.get(name, 0)} key file(s) destroyed, "
              f"{result.deleted.get(name, 0)} object(s) deleted")
    print(f"  datasets: {', '.join(sorted(rec.datasets))} "
          f"(sealed in {len({c for r in rec.datasets.values() for c in r})} commit(s))")
    print(f"  this clone's cache: {result.purged} file(s) purged")
    try:
        pulls = pulled_by(repo.root, sorted(rec.datasets))
    except DvcSecureError as exc:  # the erasure happened; the list is a courtesy
        _say(f"could not read the audit trail for past pulls: {exc.message}")
        pulls = []
    for actor, when, host in pulls:
        print(f"  pulled before (audit trail): {actor} on {host}, last {when}")
    _say(f"next: git add .dvc/secure && git commit -m 'erase {rec.domain}' && git push\n"
         "not erased: plaintext already pulled into other clones' caches and workspaces "
         "(see docs/erasure.md; who pulled it: dvc-secure audit --dataset <metafile>)")
    return EXIT_OK


def _day(text: str | None) -> dt.date:
    from dvc_secure.errors import ConfigurationError

    if not text:
        return dt.datetime.now(dt.timezone.utc).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"--as-of must be YYYY-MM-DD, not {text!r}") from None


def cmd_retention(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.retention import apply_retention, retention_status

    repo = find_repo()
    as_of = _day(args.as_of)
    if args.apply:
        result = apply_retention(repo.root, as_of, progress=_say)
        for domain in result.shredded:
            print(f"shredded key domain '{domain}'")
        for metafile, why in result.skipped:
            print(f"skipped {metafile}: {why}")
        if result.record_paths:
            _say(f"next: git add {' '.join(result.record_paths)} && git commit")
        if not result.shredded:
            print("nothing overdue to shred")
    items, records = retention_status(repo.root, as_of)
    if args.json:
        print(json.dumps({"as_of": as_of.isoformat(),
                          "datasets": [dataclasses.asdict(i) for i in items],
                          "invalid_records": records.invalid}, indent=2, sort_keys=True))
    else:
        for i in items:
            print(f"{i.state.upper():8} {i.metafile} [domain {i.domain or 'default'}]: {i.detail}")
        for why in records.invalid:
            print(f"INVALID  {why}")
    overdue = [i for i in items if i.state == "overdue"]
    return EXIT_FINDINGS if overdue or records.invalid else EXIT_OK


def cmd_hold(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.audit_recorder import record_event
    from dvc_secure.services.erasure import set_hold

    repo = find_repo()
    record = set_hold(repo.root, args.domain, args.reason or "", active=not args.release)
    record_event(repo.root, "release" if args.release else "hold",
                 details={"domain": record.domain, "reason": record.reason})
    state = "released" if args.release else "placed"
    print(f"legal hold on '{record.domain}' {state} by {record.by}: {record.reason}")
    _say(f"next: git add .dvc/secure/holds/{record.domain}.json && git commit && git push")
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("shred", help="erase a key domain on every secure remote (admins)")
    p.add_argument("domain", help="the key domain to destroy")
    p.add_argument("--reason", help="why (kept in the signed erasure record)")
    p.set_defaults(func=cmd_shred)

    p = sub.add_parser("retention", help="datasets due, overdue and on hold; --apply shreds")
    p.add_argument("--as-of", metavar="YYYY-MM-DD", help="the date to judge by (default: today)")
    p.add_argument("--apply", action="store_true",
                   help="shred the key domains of overdue datasets that are not on hold")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser("hold", help="place or release a legal hold on a key domain (admins)")
    p.add_argument("domain")
    p.add_argument("--reason", required=True)
    p.add_argument("--release", action="store_true", help="release the hold")
    p.set_defaults(func=cmd_hold)
