"""``dvc-secure install`` / ``uninstall`` / ``hook NAME``: the git hook commands.

Kept apart from ``cli.py``; ``cli.build_parser`` calls :func:`add_parsers`. The installed
hook scripts run ``python -m dvc_secure.cli.hooks NAME ARGS`` (:func:`main`), which skips
importing and building the whole command line: a hook runs on every commit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from dvc_secure.errors import ConfigurationError, DvcSecureError

if TYPE_CHECKING:
    import argparse

HOOKS = ("pre-commit", "pre-merge-commit", "prepare-commit-msg", "pre-push")


def cmd_install(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.git.hooks import install

    result = install(Path.cwd())
    state = "refreshed" if result.already_installed else "installed"
    print(f"dvc-secure hooks {state} in {result.hooks_dir} (core.hooksPath); they run "
          f"dvc-secure's checks, then the hooks in {result.chained_dir}", file=sys.stderr)
    if result.previous_hooks_path is not None and not result.already_installed:
        print(f"previous core.hooksPath ({result.previous_hooks_path}) is restored by "
              "'dvc-secure uninstall'", file=sys.stderr)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from dvc_secure.adapters.git.hooks import uninstall

    result = uninstall(Path.cwd())
    if not result.was_installed:
        print("dvc-secure hooks are not installed here: nothing to do", file=sys.stderr)
    elif result.left_alone:
        print(f"dvc-secure hooks removed; core.hooksPath was changed since install and is left "
              f"as it is ({result.restored})", file=sys.stderr)
    else:
        now = result.restored if result.restored is not None else "unset"
        print(f"dvc-secure hooks removed; core.hooksPath restored ({now})", file=sys.stderr)
    return 0


def cmd_hook(args: argparse.Namespace) -> int:
    if os.environ.get("DVC_SECURE_SKIP_HOOKS"):
        print(f"dvc-secure {args.name}: skipped (DVC_SECURE_SKIP_HOOKS is set); "
              "'dvc-secure verify' and CI still check", file=sys.stderr)
        return 0
    if args.name in ("pre-commit", "pre-merge-commit", "prepare-commit-msg"):
        from dvc_secure.services.hook_checks.pre_commit import pre_commit

        return pre_commit(Path.cwd(), args.name)
    if args.name == "pre-push":
        stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
        remote = args.args[0] if args.args else ""
        from dvc_secure.services.hook_checks.pre_push import pre_push

        return pre_push(Path.cwd(), remote, stdin)
    raise ConfigurationError(f"unknown hook '{args.name}'", hint=f"one of: {', '.join(HOOKS)}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dvc_secure.cli.hooks NAME [ARGS...]``: what ``dvc-secure hook`` does."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in HOOKS:
        print(f"usage: python -m dvc_secure.cli.hooks {{{','.join(HOOKS)}}} [args...]",
              file=sys.stderr)
        return 2
    return run_guarded(lambda: cmd_hook(SimpleNamespace(name=args[0], args=args[1:])))  # type: ignore[arg-type]


def run_guarded(call: Callable[[], int]) -> int:
    """The one place errors become exit codes and one-line diagnostics (also for cli.main;
    it lives here because the hook entry point must not import cli.py)."""
    try:
        code = int(call())
        sys.stdout.flush()  # here, not at exit: a closed pipe ('| head -1') is handled below
        return code
    except BrokenPipeError:
        # the reader went away (e.g. 'dvc-secure whoami | head -1'): not an error of ours;
        # stop writing quietly, with the status a process killed by SIGPIPE has
        _discard_stdout()
        return 141
    except DvcSecureError as exc:
        print(f"dvc-secure: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dvc-secure: interrupted; 'dvc-secure doctor' shows whether anything needs "
              "resuming (an interrupted re-encryption resumes with 'dvc-secure reencrypt')",
              file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("install", help="install git hooks that seal and verify on commit and push "
                       "(chained with DVC's and your own hooks)")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("uninstall", help="remove dvc-secure's git hooks, restore core.hooksPath")
    p.set_defaults(func=cmd_uninstall)
    p = sub.add_parser("hook", help="run one git hook's checks (called by the installed hooks "
                       "and by the pre-commit framework)")
    p.add_argument("name", choices=HOOKS)
    p.add_argument("args", nargs="*", help="arguments git passes to the hook")
    p.set_defaults(func=cmd_hook)


if __name__ == "__main__":
    sys.exit(main())
