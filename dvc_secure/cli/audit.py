"""``dvc-secure audit``: show and verify the team's audit trail (docs/audit.md).

Kept apart from ``cli.py``; ``cli.build_parser`` calls :func:`add_parsers`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from dvc_secure.errors import ConfigurationError

EXIT_OK, EXIT_FINDINGS = 0, 1


def parse_since(text: str) -> str:
    """``--since`` as the event time format (a date means its midnight, UTC)."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(text, fmt).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            continue
    raise ConfigurationError(f"--since {text!r} is not a date",
                             hint="use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)")


def _matches(datasets: list[str], target: str) -> bool:
    want = target.rstrip("/")
    if want.endswith(".dvc"):
        want = want[:-4]
    for d in datasets:
        d = d.rstrip("/")
        d = d[:-4] if d.endswith(".dvc") else d
        if d == want or d.startswith(want + "/") or want.startswith(d + "/"):
            return True
    return False


def cmd_audit(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.audit_recorder import event_row, metafiles_at, read_log

    repo = find_repo()
    log = read_log(repo.root, remote=args.remote)
    view = log.view
    if log.no_log_on is not None:
        message = (f"remote '{log.no_log_on}' carries no audit log: events are uploaded to the "
                   f"default remote '{log.home}' only (read it with: dvc-secure audit -r "
                   f"{log.home})")
        if args.json:
            print(json.dumps({"events": [], "no_log": True, "log_remote": log.home,
                              "message": message}, indent=2))
        else:
            print(message)
        return EXIT_OK
    if args.verify:
        return _print_verify(view, log.pending, args.json)
    since = parse_since(args.since) if args.since else None
    tracked: dict[str | None, list[str] | None] = {}

    def about(datasets: list[str], revision: str | None) -> bool:
        if datasets != ["all"]:
            return _matches(datasets, args.dataset)
        # a push or pull without targets moved every dataset its revision tracked
        if revision not in tracked:
            tracked[revision] = metafiles_at(repo.root, revision)
        known = tracked[revision]
        return known is None or any(m.rsplit("/", 1)[-1] == "dvc.lock" for m in known) \
            or _matches(known, args.dataset)

    rows = [event_row(ev, log.signers) for ev in view.events
            if (since is None or ev.time >= since)
            and (args.dataset is None or about(ev.datasets, ev.revision))]
    if args.json:
        print(json.dumps({"events": rows, "pending_upload": log.pending,
                          "findings": [f.to_dict() for f in view.findings]}, indent=2))
    else:
        _print_table(rows)
    if log.pending:
        print(f"dvc-secure audit: {log.pending} event(s) of this clone not yet uploaded "
              "(they are queued; the next push, pull or 'dvc-secure audit' retries)",
              file=sys.stderr)
    if view.findings:
        print(f"dvc-secure audit: the log has {len(view.findings)} integrity finding(s); "
              "run 'dvc-secure audit --verify'", file=sys.stderr)
    return EXIT_OK


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'time':20}  {'actor':16}  {'role':7}  {'action':7}  {'revision':10}  "
          f"{'client':20}  datasets")
    for r in rows:
        actor = r["actor"] + (" (former)" if r["former_member"] else "")
        client = f"{r['client']['host'][:11]}/{r['client']['clone'][:8]}"
        print(f"{r['time']:20}  {actor[:16]:16}  {r['role']:7}  {r['action']:7}  "
              f"{(r['revision'] or '-')[:10]:10}  {client:20}  {', '.join(r['datasets']) or '-'}")


def _print_verify(view: Any, pending: int, as_json: bool) -> int:
    chains = len({ev.chain for ev in view.events})
    if as_json:
        print(json.dumps({"ok": view.ok, "events": len(view.events), "chains": chains,
                          "pending_upload": pending,
                          "findings": [f.to_dict() for f in view.findings]}, indent=2))
    elif view.ok:
        print(f"audit log verified: {len(view.events)} event(s) in {chains} chain(s), "
              "signatures, links and heads consistent")
    else:
        print(f"audit log: {len(view.findings)} finding(s) over {len(view.events)} valid "
              f"event(s) in {chains} chain(s)")
        for f in view.findings:
            print(f"  [{f.kind}] {f.where}: {f.message}\n    fix: {f.fix}")
    if pending:
        print(f"dvc-secure audit: {pending} event(s) of this clone not yet uploaded",
              file=sys.stderr)
    return EXIT_OK if view.ok else EXIT_FINDINGS


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="show the team's audit trail; --verify proves it "
                       "(exit 0 clean, 1 findings)")
    p.add_argument("--since", metavar="DATE", help="only events at or after DATE (UTC)")
    p.add_argument("--dataset", metavar="TARGET", help="only events about this dataset")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--verify", action="store_true",
                   help="check signatures, hash links, gaps, order and truncation")
    p.add_argument("--remote", "-r", metavar="NAME",
                   help="secure remote holding the log (default: the default remote)")
    p.set_defaults(func=cmd_audit)

