"""``dvc-secure members / grant / revoke / rotate / approve / threshold``: team access.

Kept apart from ``cli.py``; ``cli.build_parser`` calls :func:`add_parsers`. The work is
done in ``dvc_secure/services/access.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dvc_secure.errors import ConfigurationError

NEXT_STEP = "next: git add .dvc/secure && git commit -m 'dvc-secure: {what}'"


def _dvc_dir() -> Path:
    from dvc_secure.adapters.dvc.repo_setup import find_repo

    return Path(find_repo().dvc_dir)


def _audit(action: str, details: dict[str, object]) -> None:
    """Append the change to the team's audit log (never fails the change itself)."""
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.audit_recorder import flush_quietly, record_event

    root = Path(find_repo().root)
    record_event(root, action, details=details)
    flush_quietly(root)


def _report(result: object, what: str) -> int:
    from dvc_secure.services.access import ChangeResult

    assert isinstance(result, ChangeResult)
    action = what.split()[0]
    details: dict[str, object] = {"policy_version": result.policy_version,
                                  "pending": result.pending, "summary": list(result.summary)}
    if result.reencrypted is not None:
        from dvc_secure.services.reencrypt import ReencryptResult

        if isinstance(result.reencrypted, ReencryptResult):
            details["reencrypted"] = result.reencrypted.reencrypted
    _audit(action, details)
    for line in result.summary:
        print(line)
    if result.resumed:
        pass  # the keyring did not change
    elif result.pending:
        print(f"policy version {result.policy_version} is PENDING: {result.signatures} of "
              f"{result.needed} admin signature(s); another admin runs 'dvc-secure approve' "
              f"({result.path})")
    else:
        print(f"keyring policy version {result.policy_version} saved")
    if result.reencrypted is not None:
        from dvc_secure.services.reencrypt import ReencryptResult, summary

        if isinstance(result.reencrypted, ReencryptResult):
            print(f"re-encrypted: {summary(result.reencrypted)}")
    print(NEXT_STEP.format(what=what), file=sys.stderr)
    return 0


def _progress(done: int, total: int) -> None:
    """A counter redrawn in place on a terminal; nothing elsewhere (CI logs would get a line
    per object): the summary line follows either way."""
    if sys.stderr.isatty():
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\rre-encrypting objects under the new key epoch: {done}/{total}{end}")
        sys.stderr.flush()


def cmd_members(args: argparse.Namespace) -> int:
    from dvc_secure.services.access import members

    ring, rows = members(_dvc_dir())
    if args.json:
        print(json.dumps({"policy_version": ring.policy_version, "threshold": ring.threshold,
                          "current_epoch": ring.current_epoch,
                          "members": [r.to_dict() for r in rows]}, indent=2))
        return 0
    print(f"policy version {ring.policy_version}, key epoch {ring.current_epoch}, "
          f"threshold {ring.threshold}")
    print(f"{'name':16}  {'role':6}  {'since':20}  {'expires':18}  {'recipient fpr':16}  "
          f"{'signing key':16}  epochs")
    for r in rows:
        expires = (r.expires or "-") + (" EXPIRED" if r.expired else "")
        epochs = ",".join(str(e) for e in r.epochs) or "-"
        print(f"{r.name:16}  {r.role:6}  {r.since:20}  {expires:18}  {r.fingerprint:16}  "
              f"{r.signing_keyid or '-':16}  {epochs}")
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    from dvc_secure.services.access import grant

    recipient, signing = args.recipient, args.signing_key
    if "+" in recipient and signing is None:  # member card: 'age1…+dvcsign1…'
        recipient, _, signing = recipient.partition("+")
    if not recipient.startswith("age1"):
        raise ConfigurationError("RECIPIENT must be an age recipient 'age1…'",
                                 hint="the new member prints it with 'dvc-secure whoami'")
    result = grant(_dvc_dir(), recipient=recipient, role=args.role, name=args.name,
                   signing_key=signing, expires=args.expires, history=not args.current_only)
    return _report(result, "grant")


def cmd_revoke(args: argparse.Namespace) -> int:
    from dvc_secure.services.access import revoke

    result = revoke(_dvc_dir(), member=args.member, reencrypt=args.reencrypt,
                    progress=_progress if args.reencrypt else None)
    return _report(result, f"revoke {args.member}")


def cmd_rotate(args: argparse.Namespace) -> int:
    from dvc_secure.services.access import rotate

    kms = "" if getattr(args, "no_kms", False) else getattr(args, "kms", None)
    result = rotate(_dvc_dir(), reencrypt=args.reencrypt,
                    progress=_progress if args.reencrypt else None, kms=kms)
    return _report(result, "rotate")


def cmd_reencrypt(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.reencrypt import reencrypt_current_revisions, summary

    result = reencrypt_current_revisions(Path(find_repo().root), progress=_progress)
    print(summary(result))
    _audit("reencrypt", {"epoch": result.epoch, "total": result.total,
                         "reencrypted": result.reencrypted, "missing": result.missing})
    if result.record_path is not None:
        print(f"next: git add {result.record_path.as_posix()} && git commit -m "
              "'dvc-secure: re-encryption record'", file=sys.stderr)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from dvc_secure.services.access import approve

    result = approve(_dvc_dir(), discard=args.discard)
    return _report(result, "approve")


def cmd_threshold(args: argparse.Namespace) -> int:
    from dvc_secure.services.access import set_threshold

    return _report(set_threshold(_dvc_dir(), args.n), f"threshold {args.n}")


def cmd_remote_policy(args: argparse.Namespace) -> int:
    """Show the signed remote pin against DVC's configuration, or pin the configuration."""
    from dvc_secure.adapters.dvc.remote_pin import current_policy
    from dvc_secure.adapters.local.repo_keyring import load_trusted_keyrings
    from dvc_secure.services.access import set_remote_policy

    dvc_dir = _dvc_dir()
    if args.unpin:
        return _report(set_remote_policy(dvc_dir, None), "remote-policy unpin")
    if args.update:
        policy = current_policy(dvc_dir)
        if policy is None:
            raise ConfigurationError("DVC's configuration has no secure:// remote to pin",
                                     hint="dvc-secure init --remote <storage>")
        return _report(set_remote_policy(dvc_dir, policy), "remote-policy update")
    pinned = load_trusted_keyrings(dvc_dir).newest.remotes
    now = current_policy(dvc_dir)
    if pinned is None:
        print("no remotes are pinned by the signed policy: DVC's configuration is not "
              "checked (pin it: 'dvc-secure remote-policy --update', admins)")
        return 0
    for pin in pinned.secure:
        print(f"pinned: {pin.name} = {pin.secure_url}; {pin.wraps} = {pin.url}; hide_names "
              f"{str(pin.hide_names).lower()}; allow_gc_sealed {str(pin.allow_gc_sealed).lower()}")
    print(f"pinned default remote: {pinned.default or '(none)'}")
    if now != pinned:
        print("DVC's configuration differs from the pin: DVC refuses to push until "
              ".dvc/config is restored, or an admin pins the change with "
              "'dvc-secure remote-policy --update'")
        return 1
    print("DVC's configuration matches the pin")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("remote-policy", help="show the secure remotes the signed policy pins; "
                       "--update pins DVC's current remote configuration (admins)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--update", action="store_true",
                      help="pin every secure:// remote and the default remote as configured now")
    mode.add_argument("--unpin", action="store_true",
                      help="stop pinning remotes (DVC may then use plain remotes again)")
    p.set_defaults(func=cmd_remote_policy)

    p = sub.add_parser("members", help="who may read, write and administer this repository")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_members)

    p = sub.add_parser("grant", help="add a member or change a member's role/expiry (admins)")
    p.add_argument("recipient", metavar="RECIPIENT",
                   help="the member's 'age1…' recipient (or 'age1…+dvcsign1…')")
    p.add_argument("--role", required=True, choices=["reader", "writer", "admin"])
    p.add_argument("--signing-key", metavar="DVCSIGN",
                   help="the member's 'dvcsign1…' key (required for writer and admin)")
    p.add_argument("--name", help="name in the keyring (default: derived from the recipient)")
    p.add_argument("--expires", metavar="YYYY-MM-DD",
                   help="last day of the grant (sealing refused after; dropped at next rotate)")
    p.add_argument("--current-only", action="store_true",
                   help="wrap only the current key epoch: objects pushed before stay unreadable "
                   "to the new member")
    p.set_defaults(func=cmd_grant)

    for name, helptext in (("revoke", "remove a member and rotate the data key (admins)"),
                           ("rotate", "new key epoch; drops members whose grant expired")):
        p = sub.add_parser(name, help=helptext)
        if name == "revoke":
            p.add_argument("member", metavar="MEMBER", help="name, recipient or key fingerprint")
        p.add_argument("--reencrypt", action="store_true",
                       help="also re-encrypt the objects of current revisions under the new epoch")
        if name == "rotate":  # docs/custody.md: require (or change, or drop) a KMS key
            kms = p.add_mutually_exclusive_group()
            kms.add_argument("--kms", metavar="URI", help="also wrap this and every later epoch's "
                             "data key by this KMS key (aws-kms://<key id, alias/NAME or ARN>)")
            kms.add_argument("--no-kms", action="store_true",
                             help="stop requiring a KMS key from the new epoch on")
        p.set_defaults(func=cmd_revoke if name == "revoke" else cmd_rotate)

    p = sub.add_parser("reencrypt", help="re-encrypt current revisions under the current key "
                       "epoch (resumes an interrupted 'revoke/rotate --reencrypt')")
    p.set_defaults(func=cmd_reencrypt)

    p = sub.add_parser("approve", help="sign a pending keyring change (threshold > 1)")
    p.add_argument("--discard", action="store_true", help="drop the pending change instead")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("threshold", help="admin signatures needed per keyring change")
    p.add_argument("n", type=int, metavar="N")
    p.set_defaults(func=cmd_threshold)
