"""The ``dvc-secure`` command line: parse, call, print, exit code. Nothing else.

Exit codes: 0 success, 1 a check failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvc_secure import __version__
from dvc_secure.errors import ConfigurationError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def cmd_keygen(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.local import identity_store as store
    from dvc_secure.core.keys.identity import Identity

    if args.keyring_user and args.store != "os-keyring":
        raise ConfigurationError("--keyring-user only applies to --store os-keyring",
                                 hint="add --store os-keyring, or drop --keyring-user")
    path = Path(args.output) if args.output else store.default_output_path()
    if args.pkcs11 or args.token:  # keys generated on the token, never leaving it
        return _keygen_on_token(args, path)
    identity = Identity.generate()
    # the passphrase comes from DVC_SECURE_PASSPHRASE[_FILE] or a TTY prompt, never argv
    secret = store.read_passphrase(source="the new identity", confirm=True) if args.passphrase else None
    protected = " (passphrase-protected)" if secret else ""
    if args.store == "os-keyring":
        user = args.keyring_user or store.default_keyring_user()
        pointer = store.save_to_os_keyring(identity, path, _now(), user, args.force, secret)
        print(f"identity stored in the {pointer.describe()}{protected}; "
              f"pointer file (no secret) written to {path}", file=sys.stderr)
    elif secret is not None:
        store.save_protected_identity(identity, path, _now(), secret, force=args.force)
        print(f"passphrase-protected identity written to {path} "
              "(mode 0600; keep it secret, never commit it)", file=sys.stderr)
    else:
        store.save_identity(identity, path, _now(), force=args.force)
        print(f"identity written to {path} (mode 0600; keep it secret, never commit it)", file=sys.stderr)
    print(f"recipient: {identity.recipient}")
    print(f"signing-key: {identity.signing_key}")
    return EXIT_OK


def _keygen_on_token(args: argparse.Namespace, path: Path) -> int:
    from dvc_secure.services.custody import keygen_on_token

    if not (args.pkcs11 and args.token) or args.passphrase or args.store != "file":
        raise ConfigurationError("--pkcs11 MODULE and --token LABEL go together, without "
                                 "--passphrase or --store (the token's PIN protects the keys)",
                                 hint="dvc-secure keygen --pkcs11 /path/to/module.so --token LABEL")
    identity, where = keygen_on_token(args.pkcs11, args.token, path, args.force)
    print(f"keys generated on {where}; identity file (no secret) written to {path}",
          file=sys.stderr)
    print(f"recipient: {identity.recipient}")
    print(f"signing-key: {identity.signing_key}")
    return EXIT_OK


def cmd_whoami(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.local.identity_store import identity_source, load_identity

    identity = load_identity()
    print(f"identity: {identity_source()}")
    print(f"recipient: {identity.recipient}")
    print(f"signing-key: {identity.signing_key or '(none: this identity can decrypt, not sign)'}")
    if identity.signing_key:
        # one string to hand to an admin: 'dvc-secure grant CARD --role ROLE'
        print(f"member-card: {identity.recipient}+{identity.signing_key}")
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import add_secure_remote, find_repo
    from dvc_secure.adapters.local.identity_store import load_identity
    from dvc_secure.adapters.local.repo_keyring import keyring_path, load_keyring, save_keyring
    from dvc_secure.core.keys.keyring import Keyring

    repo = find_repo()
    identity = load_identity()
    kms = None
    if args.kms:  # docs/custody.md; validated (and the KMS reached) before anything is written
        from dvc_secure.services.custody import parse_kms_uri

        kms = parse_kms_uri(args.kms)
    if args.remote:  # validate everything before creating anything
        add_secure_remote(repo, args.remote, args.name, make_default=not args.no_default,
                          dry_run=True)
    path = keyring_path(repo.dvc_dir)
    existed = path.exists()
    if existed:
        ring = load_keyring(repo.dvc_dir)
        if ring.member_for(identity) is None:
            raise ConfigurationError(
                f"{path} already exists and your identity is not a member of it",
                hint="ask one of its admins for 'dvc-secure grant'",
            )
        if kms is not None:
            raise ConfigurationError(
                f"{path} already exists: --kms applies to a new keyring only",
                hint=f"require the KMS key by a signed change: dvc-secure rotate --kms {args.kms}")
        print(f"keyring already initialised ({path.relative_to(repo.root)})", file=sys.stderr)
    else:  # created (and KMS-wrapped) before anything is written; signed and saved below
        name = args.member_name or _default_member_name()
        ring = Keyring.create(identity, name, _now())
        if kms is not None:
            from dvc_secure.services.custody import require_kms_at_creation

            require_kms_at_creation(ring, kms)
    if args.remote:
        url = add_secure_remote(repo, args.remote, args.name, make_default=not args.no_default)
        default = "" if args.no_default else " (default)"
        print(f"remote '{args.name}' = {url}{default}", file=sys.stderr)
    if not existed:
        from dvc_secure.adapters.dvc.remote_pin import current_policy
        from dvc_secure.core.keys.remote_policy import assign_names

        # the secure remotes and the default, pinned in the signed policy (keyring.md §4b)
        ring.remotes = current_policy(repo.dvc_dir)
        if ring.remotes is not None:  # each remote its own hidden names (hidden-names.md §1)
            ring.remotes = assign_names(ring.remotes, None, fresh=True)
        if (ring.remotes is not None or kms is not None) and identity.signing is not None:
            ring.sign(identity.signing)
        save_keyring(repo.dvc_dir, ring)
        pinned = f", pinned remotes: {', '.join(p.name for p in ring.remotes.secure)}" \
            if ring.remotes is not None else ""
        print(f"created keyring {path.relative_to(repo.root)} (epoch 1, admin: {name}{pinned})",
              file=sys.stderr)
    elif args.remote:
        print("the signed remote policy does not pin this remote yet: an admin runs "
              "'dvc-secure remote-policy --update'", file=sys.stderr)
    to_add = [".dvc/secure", ".dvc/config"]
    to_add += _init_seal_existing(repo.root, args.seal_existing)
    _init_install_hooks(repo.root, args.install_hooks)
    print(f"next: git add {' '.join(to_add)} && git commit -m 'dvc-secure: init'",
          file=sys.stderr)
    return EXIT_OK


def _ask(question: str) -> bool:
    """Yes/no on a terminal (default yes); callers only ask when stdin is one."""
    try:
        answer = input(f"{question} [Y/n] ").strip().lower()
    except EOFError:
        return False
    return answer in ("", "y", "yes")


def _init_seal_existing(root: Path, wanted: bool | None) -> list[str]:
    """Offer to seal the outputs DVC already tracks as version 1; returns the sidecars."""
    from dvc_secure.services.adoption import seal_existing, unsealed_outputs

    existing = unsealed_outputs(root)
    if not existing or wanted is False:
        if existing:
            print(f"not sealed: {len(existing)} existing output(s) ({', '.join(existing[:3])}"
                  f"{', …' if len(existing) > 3 else ''}); commit them only with their "
                  "seals: dvc-secure init --seal-existing", file=sys.stderr)
        return []
    if wanted is None:
        if not sys.stdin.isatty():
            print(f"not sealed: {len(existing)} output(s) DVC already tracks (non-interactive); "
                  "to push them to the secure remote and seal them as version 1: "
                  "dvc-secure init --seal-existing", file=sys.stderr)
            return []
        if not _ask(f"seal the {len(existing)} output(s) DVC already tracks as version 1 "
                    "(pushes their data, encrypted, to the secure remote)?"):
            return []
    result = seal_existing(root, existing)
    for metafile in result.sealed:
        print(f"{metafile}.seal: sealed version 1", file=sys.stderr)
    for metafile, why, fix in result.failed:
        print(f"not sealed: {metafile}: {why}\n  fix: {fix}", file=sys.stderr)
    if result.sealed:
        from dvc_secure.services.audit_recorder import record_event

        record_event(root, "seal", datasets=result.sealed,
                     details={"versions": dict.fromkeys(result.sealed, 1), "via": "init"})
    return [f"{m}.seal" for m in result.sealed]


def _init_install_hooks(root: Path, wanted: bool | None) -> None:
    from dvc_secure.adapters.git.hooks import install

    if wanted is None:
        if not sys.stdin.isatty():
            print("git hooks not installed (non-interactive): dvc-secure install",
                  file=sys.stderr)
            return
        wanted = _ask("install the git hooks (seal on commit, check on push)?")
    if not wanted:
        return
    result = install(root)
    print(f"git hooks installed in {result.hooks_dir} (dvc-secure uninstall removes them)",
          file=sys.stderr)


def _default_member_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name on this platform: a neutral default
        return "admin"


def cmd_seal(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.sealing import seal_metafiles, with_access

    repo = find_repo()
    access = with_access(args.classification, args.owner, args.purpose, args.delete_after,
                         args.readers.split(",") if args.readers is not None else None)
    if args.domain:
        from dvc_secure.cli.erasure import into_domain

        access = into_domain(repo.root, args, access)
    results = seal_metafiles(repo.root, args.targets or None, access=access, offline=args.offline)
    for r in results:
        state = f"sealed version {r.version}" if r.changed else f"unchanged (version {r.version})"
        print(f"{r.sidecar_path}: {state}")
    if any(r.changed for r in results):
        from dvc_secure.services.audit_recorder import record_event

        record_event(repo.root, "seal", datasets=[r.metafile for r in results if r.changed],
                     details={"versions": {r.metafile: r.version for r in results if r.changed}})
        print("next: git add the .seal files with their metafiles", file=sys.stderr)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.cli.report_output import render_json, render_junit, render_text
    from dvc_secure.services.history_check import verify_history

    root_policy = args.root_policy
    if root_policy is not None and not re.fullmatch(r"[0-9a-f]{64}", root_policy.lower()):
        raise ConfigurationError(f"--root-policy must be a SHA-256 digest (64 hex digits), "
                                 f"not {root_policy!r}",
                                 hint="print the current one with: dvc-secure policy-id")
    as_of = _parse_day(args.as_of, "--as-of") if args.as_of else None
    repo = find_repo()
    report = verify_history(repo.root, rev=args.rev, all_revisions=args.all_revisions,
                            remote=args.remote or (args.remote_name is not None and not args.deep),
                            deep=args.deep, jobs=args.jobs,
                            use_cache=not args.no_cache,
                            root_policy=root_policy.lower() if root_policy else None,
                            as_of=as_of, remote_name=args.remote_name)
    if args.junit:
        Path(args.junit).write_text(render_junit(report), encoding="utf-8")
    print(render_json(report) if args.json else render_text(report))
    from dvc_secure.services.audit_recorder import flush_quietly, record_event

    scope = "all-revisions" if args.all_revisions else args.rev or "HEAD"
    record_event(repo.root, "verify", details={"ok": report.ok, "rev": scope,
                                               "remote": bool(args.remote), "deep": bool(args.deep)},
                 warn=False, interactive=False)  # verify needs no identity: never ask for one
    if args.remote:  # it talks to the remote anyway: upload the event (CI clones are thrown away)
        flush_quietly(repo.root)
    return EXIT_OK if report.ok else EXIT_FINDINGS


def _parse_day(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"{option} must be a date YYYY-MM-DD, not {text!r}",
                                 hint=f"e.g. {option} 2030-01-31") from None


def cmd_log(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.history_check import dataset_log

    repo = find_repo()
    entries = dataset_log(repo.root, args.target, rev=args.rev)
    if not entries:
        raise ConfigurationError(f"no sealed versions of '{args.target}' in the history of {args.rev}",
                                 hint=f"seal it with: dvc-secure seal {args.target}")
    print(f"{'version':>7}  {'sealed at':20}  {'commit':10}  {'size':>12}  {'files':>6}  "
          f"{'sha256':16}  signer")
    for e in reversed(entries):
        sc = e.sidecar
        size = sum(o.size for o in sc.outputs)
        files = sum(o.nfiles for o in sc.outputs)
        digest = sc.outputs[0].sha256[:16] if len(sc.outputs) == 1 else sc.digest[:16]
        print(f"{sc.version:>7}  {sc.sealed_at:20}  {e.commit[:10]}  {size:>12}  {files:>6}  "
              f"{digest:16}  {e.signer}")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.services.restore import restore_version

    repo = find_repo()
    result = restore_version(repo.root, args.target, args.version)
    from dvc_secure.services.audit_recorder import record_event

    record_event(repo.root, "restore", datasets=[result.metafile],
                 details={"restored_version": result.restored_version,
                          "new_version": result.new_version})
    print(f"{result.metafile}: content of version {result.restored_version} checked out, "
          f"verified (SHA-256) and sealed as version {result.new_version}")
    print(f"next: git add {result.metafile} {result.metafile}.seal && git commit", file=sys.stderr)
    return EXIT_OK


def cmd_policy_id(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.dvc.repo_setup import find_repo
    from dvc_secure.adapters.local.repo_keyring import keyring_path
    from dvc_secure.core.keys.keyring import Keyring

    repo = find_repo()
    ring = Keyring.from_json(keyring_path(repo.dvc_dir).read_text(encoding="utf-8"))
    ring.verify_signatures()
    print(ring.policy_id)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from dvc_secure.services.demo import run_demo

    result = run_demo(print, Path(args.dir) if args.dir else None, keep=args.keep,
                      size_mib=args.size_mib)
    if result.failure is not None:
        print(f"\nDEMO FAILED: {result.failure}", file=sys.stderr)
        print(f"(left in place for inspection: {result.base})", file=sys.stderr)
        return EXIT_FINDINGS
    print(f"\nall {len(result.checks)} checks passed.")
    if result.kept:
        print(f"demo repository kept in {result.base}")
    return EXIT_OK


class _Subcommands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose ``--help`` starts with the one line the command list shows."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        if kwargs.get("help") and "description" not in kwargs:
            kwargs["description"] = kwargs["help"]
        return super().add_parser(name, **kwargs)  # type: ignore[no-any-return]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dvc-secure",
        description="Client-side encryption and verifiable versioning for DVC remotes.",
    )
    # every add_parser below, here and in cli/hooks, cli/audit, cli/access, goes through it
    parser.register("action", "parsers", _Subcommands)
    parser.add_argument("--version", action="version", version=f"dvc-secure {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("keygen", help="create your identity (encryption + signing keys)")
    p.add_argument("--output", "-o", metavar="PATH",
                   help="where to write it (default: $DVC_SECURE_IDENTITY_FILE, else $XDG_CONFIG_HOME/dvc-secure/identity.txt)")
    p.add_argument("--force", action="store_true", help="replace an existing identity file")
    p.add_argument("--passphrase", action="store_true",
                   help="protect it with a passphrase (scrypt): asked twice on a terminal, or taken "
                   "from $DVC_SECURE_PASSPHRASE_FILE / $DVC_SECURE_PASSPHRASE")
    p.add_argument("--store", choices=("file", "os-keyring"), default="file",
                   help="file (default): the identity file; os-keyring: the OS keyring (needs the "
                   "'keyring' package), with a pointer file (no secret) at the usual path")
    p.add_argument("--keyring-user", metavar="NAME",
                   help="user name of the OS keyring entry (service 'dvc-secure'; default: your login)")
    p.add_argument("--pkcs11", metavar="MODULE", help="generate the keys on a PKCS#11 token through "
                   "this module (needs dvc-secure[pkcs11]; PIN from $DVC_SECURE_PKCS11_PIN_FILE, "
                   "$DVC_SECURE_PKCS11_PIN or the terminal; docs/custody.md)")
    p.add_argument("--token", metavar="LABEL", help="label of the token (with --pkcs11)")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("whoami", help="print the current identity's public keys and where it is stored")
    p.set_defaults(func=cmd_whoami)

    p = sub.add_parser("init", help="create the repository keyring; optionally add the secure remote")
    p.add_argument("--remote", metavar="NAME", help="existing DVC remote to wrap as secure://NAME")
    p.add_argument("--name", default="vault", help="name of the secure remote (default: vault)")
    p.add_argument("--no-default", action="store_true", help="do not make it the default remote")
    p.add_argument("--member-name", metavar="NAME", help="your name in the keyring (default: login)")
    p.add_argument("--kms", metavar="URI", help="also wrap every epoch's data key by this KMS key: "
                   "aws-kms://<key id, alias/NAME or ARN> (needs dvc-secure[aws-kms]; docs/custody.md)")
    p.add_argument("--seal-existing", action=argparse.BooleanOptionalAction, default=None,
                   help="push the data DVC already tracks to the secure remote and seal it as "
                   "version 1 (default: ask on a terminal, otherwise no)")
    p.add_argument("--install-hooks", action=argparse.BooleanOptionalAction, default=None,
                   help="install the git hooks (default: ask on a terminal, otherwise no)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("seal", help="sign sidecars for datasets whose outputs changed")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="metafiles or dataset paths (default: every metafile in the workspace)")
    p.add_argument("--classification", choices=["public", "internal", "confidential", "restricted"])
    p.add_argument("--owner", help="accountable owner of the dataset")
    p.add_argument("--purpose", help="purpose of processing")
    p.add_argument("--delete-after", metavar="YYYY-MM-DD", help="retention limit ('' clears it)")
    p.add_argument("--readers", metavar="NAMES", help="comma-separated list of intended readers")
    p.add_argument("--domain", help="seal into this key domain (docs/erasure.md)")
    p.add_argument("--offline", action="store_true",
                   help="do not pin the remote ciphertext (objects not pushed yet); "
                   "'verify --remote' will report this version as not indexed")
    p.set_defaults(func=cmd_seal)

    p = sub.add_parser("verify", help="verify sealed dataset history (exit 0 verified, 1 findings)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--rev", metavar="REV|A..B", help="revision or range (default: HEAD)")
    which.add_argument("--all-revisions", action="store_true", help="every branch and tag")
    p.add_argument("--remote", action="store_true",
                   help="also prove every sealed object is on its remote, byte for byte (no key needed)")
    p.add_argument("--deep", action="store_true",
                   help="also download, decrypt and re-hash everything (needs a reader identity)")
    p.add_argument("-r", "--remote-name", metavar="REMOTE",
                   help="check this secure remote (e.g. a backup) instead of the one each "
                   "version was sealed for; implies --remote unless --deep is given")
    p.add_argument("--jobs", "-j", type=int, default=4, help="parallel remote reads (default 4)")
    p.add_argument("--root-policy", metavar="SHA256",
                   help="pin the first trust policy of the history (see 'dvc-secure policy-id')")
    p.add_argument("--no-cache", action="store_true",
                   help="ignore the local cache of already verified history (walk it all)")
    p.add_argument("--as-of", metavar="YYYY-MM-DD",
                   help="judge grant expiry as on this date (default: today, UTC, by this "
                   "machine's clock), e.g. to see what fails once a grant expires")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("log", help="sealed versions of a dataset")
    p.add_argument("target", metavar="TARGET", help="dataset path or its metafile")
    p.add_argument("--rev", default="HEAD", help="history to read (default: HEAD)")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("restore", help="return a dataset to an old version, as a new version")
    p.add_argument("target", metavar="TARGET", help="dataset path or its .dvc file")
    p.add_argument("--version", type=int, required=True, help="sealed version to return to")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("policy-id", help="digest of the current trust policy (to pin in CI)")
    p.set_defaults(func=cmd_policy_id)

    p = sub.add_parser("demo", help="self-contained demo: push, wipe, pull, inspect the ciphertext")
    p.add_argument("--dir", metavar="PATH", help="work here instead of a temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the demo directory")
    p.add_argument("--size-mib", type=int, default=8, help="size of the large demo file")
    p.set_defaults(func=cmd_demo)

    from dvc_secure.cli.hooks import add_parsers as add_hook_parsers

    add_hook_parsers(sub)
    from dvc_secure.cli.audit import add_parsers as add_audit_parsers

    add_audit_parsers(sub)
    from dvc_secure.cli.access import add_parsers as add_access_parsers

    add_access_parsers(sub)
    from dvc_secure.cli.repair import add_parsers as add_repair_parsers

    add_repair_parsers(sub)
    from dvc_secure.cli.governance import add_audit_subcommands
    from dvc_secure.cli.governance import add_parsers as add_governance_parsers

    add_governance_parsers(sub)
    add_audit_subcommands(sub)  # 'audit export' / 'audit alerts', below cli/audit.py's parser
    from dvc_secure.cli.doctor import add_parsers as add_doctor_parsers

    add_doctor_parsers(sub)
    from dvc_secure.cli.erasure import add_parsers as add_erasure_parsers

    add_erasure_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from dvc_secure.cli.hooks import run_guarded

    return run_guarded(lambda: int(args.func(args)))


if __name__ == "__main__":
    sys.exit(main())
