"""Run ``dvc`` or ``dvc-secure`` with a pause after each call of the functions named in
``FAULT_SLOW`` (``module:Owner.attr=seconds``, comma separated; negative: before the call).

The pause only widens the window in which a fault test's SIGKILL lands in the middle of the
work (after a random number of objects); the code under test is the real one, unchanged.
``FAULT_PAUSE`` (``module:Owner.attr=N``, with ``FAULT_PAUSE_DIR``) holds the process after
the N-th call until the test says go.
Usage: ``python slowed.py dvc push`` / ``python slowed.py dvc-secure seal data``."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any


def _slow(spec: str) -> None:
    target, delay = spec.rsplit("=", 1)
    module, attr = target.split(":")
    owner: Any = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    pause = float(delay)

    @functools.wraps(original)
    def slowed(*args: Any, **kwargs: Any) -> Any:
        if pause < 0:  # a negative pause comes before the call
            time.sleep(-pause)
        result = original(*args, **kwargs)
        if pause > 0:
            time.sleep(pause)
        return result

    setattr(owner, name, slowed)


def _pause(spec: str, directory: Path) -> None:
    """After the N-th call of ``module:Owner.attr`` returns, create ``paused`` in
    ``directory`` and wait until the test creates ``go`` (it changes the storage meanwhile)."""
    target, count = spec.rsplit("=", 1)
    module, attr = target.split(":")
    owner: Any = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = [0]

    @functools.wraps(original)
    def paused(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        calls[0] += 1
        if calls[0] == int(count):
            (directory / "paused").touch()
            while not (directory / "go").exists():
                time.sleep(0.01)
        return result

    setattr(owner, name, paused)


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    for spec in filter(None, os.environ.get("FAULT_SLOW", "").split(",")):
        _slow(spec)
    if os.environ.get("FAULT_PAUSE"):
        _pause(os.environ["FAULT_PAUSE"], Path(os.environ["FAULT_PAUSE_DIR"]))
    sys.argv = [tool, *args]  # what the command sees (its audit event names it)
    if tool == "dvc":
        from dvc.cli import main as dvc_main

        return int(dvc_main(args))
    from dvc_secure.cli.main import main as secure_main

    return int(secure_main(args))


if __name__ == "__main__":
    sys.exit(main())
