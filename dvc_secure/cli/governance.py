"""``dvc-secure inventory / overlap / incident`` and ``audit export / alerts``: governance
outputs for a DPO and a security team (docs/governance.md).

Kept apart from ``main.py``; ``main.build_parser`` calls :func:`add_parsers` and
:func:`add_audit_subcommands`. The work is done in ``dvc_secure/services/governance/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FINDINGS = 0, 1


def _root() -> Path:
    from dvc_secure.adapters.dvc.repo_setup import find_repo

    return Path(find_repo().root)


def _metafiles(targets: list[str]) -> list[str]:
    from dvc_secure.adapters.git.history import normalise_metafile

    return [normalise_metafile(t) for t in targets]


def _print_findings(command: str, revision: str, findings: list[Any]) -> None:
    print(f"dvc-secure {command}: revision {revision} does not verify; the report is "
          "built only from verified records", file=sys.stderr)
    for f in findings:
        print(f"  FAIL {f.rev[:10]} {f.dataset}: [{f.code}] {f.message}\n    fix: {f.fix}",
              file=sys.stderr)


def _add(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str,
         details: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` starts with the one line the command list shows."""
    return sub.add_parser(name, help=summary, description=f"{summary}. {details}")


# --- inventory ---------------------------------------------------------------------------


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_inventory_markdown(doc: dict[str, Any]) -> str:
    """A table a DPO can paste (one row per dataset), with a header naming the revision."""
    lines = [f"## Record of processing at `{doc['revision'][:12]}`", "",
             f"Generated {doc['generated_at']} by dvc-secure from verified, signed records "
             f"(keyring policy version {doc['keyring']['policy_version']}, current key epoch "
             f"{doc['keyring']['current_epoch']}).", "",
             "| dataset | purpose | classification | owner | recipients (role, expiry) | "
             "retention | hold | location | key custody | size | files | last sealed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in doc["datasets"]:
        recipients = "; ".join(
            f"{r['name']} ({r['role']}" + (f", until {r['expires']}" if r["expires"] else "")
            + (", EXPIRED" if r["expired"] else "") + ")" for r in d["recipients"]) or "-"
        locations = "; ".join(f"{loc['remote']}: {loc['backend']}"
                              + (f" {loc['host']}" if loc["host"] else "")
                              for loc in d["locations"])
        last = d["last_sealed"]
        row = [f"`{d['dataset']}`", d["purpose"] or "-", d["classification"], d["owner"] or "-",
               recipients, d["retention"]["delete_after"] or "-", d["retention"]["hold"],
               locations, d["key_custody"]["description"], f"{d['size']} B", d["files"],
               f"v{last['version']}, {last['sealed_at']}, {last['signer']}"]
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    if not doc["datasets"]:
        lines.append("| (no sealed datasets) |  |  |  |  |  |  |  |  |  |  |  |")
    return "\n".join(lines)


def cmd_inventory(args: argparse.Namespace) -> int:
    from dvc_secure.services.governance.inventory import inventory

    result = inventory(_root(), rev=args.rev, croissant=args.format == "croissant",
                       datasets=_metafiles(args.datasets) or None)
    if not result.ok or result.inventory is None:
        _print_findings("inventory", result.revision[:12], result.findings)
        return EXIT_FINDINGS
    doc = result.inventory.to_dict()
    if args.format == "json":
        doc["unsealed"] = result.unsealed
        print(json.dumps(doc, indent=2, sort_keys=True))
    elif args.format == "croissant":
        print(json.dumps(result.croissant, indent=2))
        for path in result.missing_manifests:
            print(f"dvc-secure inventory: the sealed manifest of '{path}' is neither in the "
                  "local cache nor readable from its remote: its files are not listed",
                  file=sys.stderr)
    else:
        print(render_inventory_markdown(doc))
    for mf in result.unsealed:
        print(f"dvc-secure inventory: '{mf}' declares outputs but is not sealed: not in the "
              f"record (seal it: dvc-secure seal {mf})", file=sys.stderr)
    return EXIT_OK


# --- overlap ----------------------------------------------------------------------------


def cmd_overlap(args: argparse.Namespace) -> int:
    from dvc_secure.services.governance.overlap import overlap

    result = overlap(_root(), args.datasets, rev=args.rev, include_empty=args.include_empty,
                     workspace=args.workspace)
    if result.findings:
        bad = sorted({f.rev for f in result.findings})
        _print_findings("overlap", ", ".join(r[:12] for r in bad), result.findings)
    if args.json:
        print(json.dumps({"ok": result.ok, "checked": result.checked,
                          "revisions": result.revisions,
                          "overlaps": [o.to_dict() for o in result.overlaps],
                          "verified": not result.findings}, indent=2, sort_keys=True))
    else:
        for o in result.overlaps:
            print(f"OVERLAP {o.sha256[:16]} ({o.size} B) in {', '.join(o.datasets)}:")
            for f in o.files:
                print(f"  {f.dataset}: {f.path}")
        if result.ok:
            print(f"no overlap: {len(result.checked)} dataset(s) checked "
                  f"({', '.join(result.checked)})")
        elif result.overlaps:
            n = sum(len(o.files) for o in result.overlaps)
            print(f"{len(result.overlaps)} content(s) shared across datasets ({n} files)")
    return EXIT_OK if result.ok else EXIT_FINDINGS


# --- incident ---------------------------------------------------------------------------


def _record_containment(root: Path, report: Any) -> None:
    """The revoke and the incident go into the audit trail like any access change."""
    from dvc_secure.services.audit_recorder import flush_quietly, record_event

    record_event(root, "revoke", details={"member": report.member, "summary": report.summary,
                                          "incident": report.record.incident_id})
    record_event(root, "incident", details={"member": report.member,
                                            "id": report.record.incident_id,
                                            "exposures": len(report.exposures),
                                            "events": len(report.events)})
    flush_quietly(root)


def cmd_incident(args: argparse.Namespace) -> int:
    from dvc_secure.cli.access import NEXT_STEP
    from dvc_secure.services.governance.incident import contain, investigate

    root = _root()
    report = investigate(root, args.member, remote=args.remote)
    if report.findings:
        _print_findings("incident", "HEAD", report.findings)
        return EXIT_FINDINGS
    if args.contain:
        def progress(done: int, total: int) -> None:
            end = "\n" if done >= total else ""
            sys.stderr.write(f"\rre-encrypting objects under the new key epoch: {done}/{total}{end}")

        contain(root, report, progress=progress)
        _record_containment(root, report)
    if report.record_path is not None:
        report.record_path = report.record_path.relative_to(root)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print_incident(report)
    if report.events_error:
        print(f"dvc-secure incident: the audit trail could not be read ({report.events_error}); "
              "'did read' is incomplete", file=sys.stderr)
    if report.record is not None:
        print(NEXT_STEP.format(what=f"incident {report.record.incident_id}"), file=sys.stderr)
    return EXIT_OK


def _print_incident(report: Any) -> None:
    keyid = report.signing_keyid or "-"
    print(f"member: {report.member} ({report.role}), recipient {report.recipient_fpr}, "
          f"signing key {keyid}")
    print(f"key epochs wrapped to them: {', '.join(map(str, report.epochs)) or 'none'}")
    print(f"could read: {len(report.exposures)} sealed dataset version(s)")
    for e in report.exposures:
        print(f"  {e.metafile} v{e.version} ({e.classification}), epoch(s) "
              f"{', '.join(map(str, e.key_epochs))}, sealed in {e.revision[:10]}, "
              f"sidecar {e.sidecar_digest[:16]}")
    print(f"did (per the verified audit trail): {len(report.events)} event(s)")
    for ev in report.events:
        print(f"  {ev.time} {ev.action} {', '.join(ev.datasets) or '-'} "
              f"objects={ev.details.get('objects', '-')} bytes={ev.details.get('bytes', '-')} "
              f"host={ev.host} (event {ev.chain[:8]}/{ev.seq})")
    for line in report.summary:
        print(line)
    if report.record_path is not None:
        print(f"incident record: {report.record_path.as_posix()} (signed)")


def cmd_incidents(args: argparse.Namespace) -> int:
    from dvc_secure.services.governance.incident import check_records

    root = _root()
    checks = check_records(root)
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "records": [
            {"path": c.path.relative_to(root).as_posix(), "ok": c.ok, "problem": c.problem,
             "signed_by": list(c.signers),
             "record": c.record.signed_dict() if c.record is not None else None}
            for c in checks]}, indent=2, sort_keys=True))
    else:
        for c in checks:
            if c.record is None or not c.ok:
                print(f"INVALID {c.path.relative_to(root).as_posix()}: {c.problem}")
                continue
            r = c.record
            print(f"{r.incident_id}  member {r.member}  contained by {', '.join(c.signers)}  "
                  f"{len(r.exposures)} exposure(s), {len(r.events)} event(s), new epoch "
                  f"{r.new_epoch}")
        if not checks:
            print("no incident records")
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FINDINGS


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _add(sub, "inventory", "record of processing (GDPR Art. 30 style) at a revision",
        "Per sealed dataset: purpose, classification, owner, recipients, "
        "retention, location, key custody, size, last sealed version. Built only from "
        "records that 'dvc-secure verify' accepts; exit 1 when the revision does not verify.")
    p.add_argument("datasets", nargs="*", metavar="TARGET",
                   help="only these datasets (metafiles or paths; default: all)")
    p.add_argument("--rev", metavar="REV", help="revision to report on (default: HEAD)")
    p.add_argument("--format", choices=("markdown", "json", "croissant"), default="markdown",
                   help="markdown table (default), JSON (docs/governance.md), or MLCommons "
                   "Croissant 1.0 JSON-LD with per-file SHA-256")
    p.set_defaults(func=cmd_inventory)

    p = _add(sub, "overlap", "files with identical content across splits (exit 1 on overlap)",
        "Compare the sealed SHA-256 of every file of two or more datasets (or "
        "revisions, PATH@REV) and name the files that share content. Without datasets, "
        "checks each group declared in .dvc/secure/splits.json. No data is downloaded: "
        "digests come from verified sidecars and sealed manifests.")
    p.add_argument("datasets", nargs="*", metavar="TARGET",
                   help="datasets (metafiles or paths), optionally PATH@REV")
    p.add_argument("--rev", metavar="REV", help="revision for targets without @REV (default: HEAD)")
    p.add_argument("--workspace", action="store_true",
                   help="read the sidecars of the working tree (pre-commit hooks): validly "
                   "signed and bound, without the history rules of 'verify'")
    p.add_argument("--include-empty", action="store_true",
                   help="also report empty files (identical by definition; skipped by default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_overlap)

    p = _add(sub, "incident", "what a member could read and did read; --contain revokes them",
        "For a breach notification: the key epochs wrapped to MEMBER, every "
        "sealed dataset version under them (with classification), and their verified audit "
        "events. --contain (admins) revokes the member, rotates the data key, re-encrypts "
        "current data and writes a signed record to .dvc/secure/incidents/.")
    p.add_argument("member", metavar="MEMBER", help="name, recipient or key fingerprint")
    p.add_argument("--contain", action="store_true",
                   help="revoke, rotate, re-encrypt and write the signed incident record")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--remote", "-r", metavar="NAME",
                   help="secure remote holding the audit log (default: the default remote)")
    p.set_defaults(func=cmd_incident)

    p = _add(
        sub, "incidents", "list and check the signed incident records (exit 1 if one is invalid)",
        "Every .dvc/secure/incidents/*.json of the working tree: parsed "
        "(docs/spec/incident.md) and checked for a valid admin signature.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_incidents)


# --- audit export / alerts -----------------------------------------------------------------


def _since(text: str | None) -> str | None:
    if text is None:
        return None
    from dvc_secure.cli.audit import parse_since

    return parse_since(text)


def _log_findings(findings: list[Any]) -> None:
    if findings:
        print(f"dvc-secure audit: the log has {len(findings)} integrity finding(s); run "
              "'dvc-secure audit --verify' (only verified events are used)", file=sys.stderr)


def cmd_audit_export(args: argparse.Namespace) -> int:
    import time

    from dvc_secure import __version__
    from dvc_secure.services.governance.audit_views import export, follow

    root, since = _root(), _since(args.since)
    if not args.follow:
        batch = export(root, __version__, args.remote, since)
        for line in batch.lines:
            print(json.dumps(line, sort_keys=True, separators=(",", ":")))
        _log_findings(batch.findings)
        return EXIT_FINDINGS if batch.findings else EXIT_OK
    reported = 0
    try:
        for batch in follow(root, __version__, args.remote, since, args.interval,
                            args.max_polls, time.sleep):
            for line in batch.lines:
                print(json.dumps(line, sort_keys=True, separators=(",", ":")), flush=True)
            if len(batch.findings) > reported:
                _log_findings(batch.findings)
                reported = len(batch.findings)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends --follow normally
    return EXIT_OK


def cmd_audit_alerts(args: argparse.Namespace) -> int:
    from dvc_secure.services.governance.audit_views import alerts

    report = alerts(_root(), args.remote, _since(args.since),
                    Path(args.config) if args.config else None)
    if report.revision_findings:
        _print_findings("audit alerts", "HEAD", report.revision_findings)
        return EXIT_FINDINGS
    if args.json:
        print(json.dumps({"alerts": [a.to_dict() for a in report.alerts],
                          "events": report.events,
                          "log_findings": [f.to_dict() for f in report.log_findings]},
                         indent=2, sort_keys=True))
    else:
        for a in report.alerts:
            print(f"ALERT [{a.rule}] {a.time} {a.actor} {a.action} "
                  f"{', '.join(a.datasets) or '-'}: {a.message} "
                  f"(event {a.chain[:8]}/{a.seq})")
        if not report.alerts:
            print(f"no alerts over {report.events} verified event(s)")
    _log_findings(report.log_findings)
    return EXIT_FINDINGS if report.alerts or report.log_findings else EXIT_OK


def add_audit_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``audit export`` and ``audit alerts``, below the ``audit`` parser of cli/audit.py
    (``dvc-secure audit`` without a subcommand keeps working as before)."""
    audit = sub.choices["audit"]
    nested = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    p = _add(nested, "export", "the verified audit trail as OCSF JSON lines (for a SIEM)",
        "One OCSF 1.1 event per line (File System Activity 1001 for push/pull/"
        "seal/verify, Account Change 3001 for grant/revoke/rotate), with the actor's key "
        "fingerprint and the event's chain id, seq and digest. Exit 1 when the log has "
        "integrity findings (only verified events are exported).")
    p.add_argument("--since", metavar="DATE", help="only events at or after DATE (UTC)")
    p.add_argument("--follow", action="store_true",
                   help="keep polling and print new events (Ctrl-C stops)")
    p.add_argument("--interval", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between polls with --follow (default 30)")
    p.add_argument("--max-polls", type=int, default=0, metavar="N",
                   help="stop --follow after N polls (default 0: until interrupted)")
    p.add_argument("--remote", "-r", metavar="NAME",
                   help="secure remote holding the log (default: the default remote)")
    p.set_defaults(func=cmd_audit_export)

    p = _add(nested, "alerts", "alert rules over the audit trail (exit 1 when any fires)",
        "Rules: first pull of a confidential/restricted dataset by a member, a pull "
        "volume spike against the member's own history, use of a revoked or expired "
        "member's key, activity outside the window of .dvc/secure/alerts.json.")
    p.add_argument("--since", metavar="DATE",
                   help="report alerts for events at or after DATE (earlier events are baseline)")
    p.add_argument("--config", metavar="PATH",
                   help="rules configuration (default: .dvc/secure/alerts.json, if present)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--remote", "-r", metavar="NAME",
                   help="secure remote holding the log (default: the default remote)")
    p.set_defaults(func=cmd_audit_alerts)
