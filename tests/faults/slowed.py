"""Run ``dvc`` or ``dvc-secure`` with a pause after each call of the functions named in
``FAULT_SLOW`` (``module:Owner.attr=seconds``, comma separated).

The pause only widens the window in which a fault test's SIGKILL lands in the middle of the
work (after a random number of objects); the code under test is the real one, unchanged.
Usage: ``python slowed.py dvc push`` / ``python slowed.py dvc-secure seal data``."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from typing import Any


def _slow(spec: str) -> None:
    target, delay = spec.rsplit("=", 1)
    module, attr = target.split(":")
    owner: Any = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    @functools.wraps(original)
    def slowed(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        time.sleep(float(delay))
        return result

    setattr(owner, name, slowed)


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    for spec in filter(None, os.environ.get("FAULT_SLOW", "").split(",")):
        _slow(spec)
    if tool == "dvc":
        from dvc.cli import main as dvc_main

        return int(dvc_main(args))
    from dvc_secure.cli.main import main as secure_main

    return int(secure_main(args))


if __name__ == "__main__":
    sys.exit(main())
