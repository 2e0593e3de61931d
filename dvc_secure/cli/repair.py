"""``dvc-secure repair``: the shell around services/repair.py (parse, call, print, exit code).

Exit codes: 0 the remote is complete (healthy, or fully repaired), 1 something could not
be repaired (or, with --dry-run, something needs repair), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dvc_secure.services.repair import RepairReport

EXIT_OK, EXIT_FINDINGS = 0, 1


def render_text(report: RepairReport) -> str:
    lines = []
    for i in report.items:
        where = f"{i.rev[:10]} {i.dataset}:{i.output}"
        lines.append(f"{i.action.upper():14} {where} on '{i.remote}': {i.problem} "
                     f"{i.path} ({i.detail})")
    for f in report.remaining:
        lines.append(f"STILL FAILING  {f.rev[:10]} {f.dataset}: {f.message}")
    for r in report.records:
        lines.append(f"upload record written: {r}")
    scope = f"remote '{report.remote}'" if report.remote else "each output's sealed remote"
    summary = f"{report.outputs} sealed output(s) in {report.revisions} revision(s) on {scope}"
    if report.dry_run:
        todo = sum(1 for i in report.items if i.action != "not repaired")
        lines.append(f"dry run: {summary}: {len(report.items)} problem(s), {todo} repairable "
                     "from here; nothing was changed")
    elif report.ok:
        fixed = len({(i.remote, i.path) for i in report.items})
        lines.append(f"complete: {summary}; {fixed} stored item(s) repaired"
                     if fixed else f"healthy: {summary}; nothing to repair")
    else:
        lines.append(f"NOT complete: {len(report.remaining)} finding(s) remain after repair")
    return "\n".join(lines)


def render_json(report: RepairReport) -> str:
    doc = {
        "complete": report.ok,
        "dry_run": report.dry_run,
        "remote": report.remote,
        "revisions": report.revisions,
        "outputs": report.outputs,
        "items": [{"revision": i.rev, "dataset": i.dataset, "output": i.output,
                   "remote": i.remote, "path": i.path, "problem": i.problem,
                   "action": i.action, "detail": i.detail,
                   "available_on": list(i.available_on)} for i in report.items],
        "upload_records": report.records,
        "remaining": [{"revision": f.rev, "dataset": f.dataset, "code": f.code,
                       "message": f.message, "fix": f.fix} for f in report.remaining],
    }
    return json.dumps(doc, indent=2, sort_keys=True)


def cmd_repair(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.repair import repair_remote

    repo = find_repo()
    report = repair_remote(repo.root, remote=args.remote, all_revisions=args.all_revisions,
                           dry_run=args.dry_run, jobs=args.jobs)
    print(render_json(report) if args.json else render_text(report))
    if not args.dry_run and report.items:
        from dvc_secure.services.audit_recorder import record_event

        record_event(repo.root, "repair", details={
            "remote": args.remote or "sealed", "repaired": sum(
                1 for i in report.items if i.action in ("re-pushed", "copied")),
            "complete": report.ok}, warn=False, interactive=False)
    if report.records:
        print("nothing to commit: the signed upload records are stored on the remote itself",
              file=sys.stderr)
    ok = report.ok and not (args.dry_run and report.items)
    return EXIT_OK if ok else EXIT_FINDINGS


def cmd_migrate_names(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.remote_access import default_remote
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.name_migration import migrate_names

    repo = find_repo()
    remote = args.remote or default_remote(repo.dvc_dir)
    report = migrate_names(repo.dvc_dir, remote, dry_run=args.dry_run)
    if args.dry_run:
        print(f"dry run: {report.remaining} object(s) on '{remote}' are stored under scheme-1 "
              "hidden names; nothing was changed")
        return EXIT_FINDINGS if report.remaining else EXIT_OK
    print(f"'{remote}': {report.moved} object(s) renamed to the remote's own hidden names, "
          f"{report.dropped} old name(s) of objects already renamed removed, "
          f"{report.remaining} scheme-1 name(s) left")
    if report.remaining:
        print("run the command again (it resumes)", file=sys.stderr)
        return EXIT_FINDINGS
    if report.legacy_flag:
        print(f"an admin can now stop reading scheme-1 names on '{remote}': 'dvc-secure "
              f"remote-policy --update --names-migrated {remote}'", file=sys.stderr)
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("repair", help="diagnose a secure remote against the sealed history and "
                       "push again what it lacks (exit 0 complete, 1 not repaired)")
    p.add_argument("-r", "--remote", metavar="REMOTE",
                   help="the secure remote to repair (default: each version's sealed remote)")
    p.add_argument("--all-revisions", action="store_true",
                   help="every branch and tag (default: HEAD)")
    p.add_argument("--dry-run", action="store_true",
                   help="only list what is missing or corrupt (exit 1 if anything is)")
    p.add_argument("--jobs", "-j", type=int, default=4, help="parallel remote reads (default 4)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_repair)

    p = sub.add_parser("migrate-names", help="rename a secure remote's objects from the "
                       "repository-wide (scheme 1) hidden names to the remote's own; resumable "
                       "(exit 0 done, 1 names left)")
    p.add_argument("-r", "--remote", metavar="REMOTE",
                   help="the secure remote to migrate (default: the default remote)")
    p.add_argument("--dry-run", action="store_true",
                   help="only count the objects still under scheme-1 names (exit 1 if any)")
    p.set_defaults(func=cmd_migrate_names)
