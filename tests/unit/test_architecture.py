"""The layout docs/architecture.md describes, checked (the import contract itself is
``lint-imports`` over ``.importlinter``, run by .ci/run)."""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

import dvc_secure

PACKAGE = Path(dvc_secure.__file__).resolve().parent  # the installed package (a wheel in CI's oldest-DVC run)
CONTRACT = Path(__file__).resolve().parents[2] / ".importlinter"
ENTRY_MODULES = {"__init__.py", "__main__.py", "_startup.py", "errors.py", "plugin.py",
                 "cli_hooks.py"}
LAYERS = {"core", "adapters", "services", "cli"}
MAX_LINES = 500
# one responsibility each, a little over the limit; splitting would scatter one spec/record
OVER_LIMIT = {
    "core/format/object_format.py": 530,  # docs/spec/object-format.md, header to last segment
    "core/keys/keyring.py": 560,  # docs/spec/keyring.md: the signed document and its checks
    "adapters/dvc/secure_fsspec.py": 520,  # the fsspec methods DVC calls, one class
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_top_of_the_package_holds_only_layers_and_entry_modules() -> None:
    top = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    files = {n for n in top if n.endswith(".py")}
    dirs = {n for n in top if (PACKAGE / n).is_dir()}
    assert files <= ENTRY_MODULES, sorted(files - ENTRY_MODULES)
    assert dirs == LAYERS, sorted(dirs ^ LAYERS)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path: Path) -> None:
    rel = path.relative_to(PACKAGE).as_posix()
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= OVER_LIMIT.get(rel, MAX_LINES), f"{rel}: {lines} lines: split by responsibility"


def _private_uses(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dvc_secure"):
            found += [f"from {node.module} import {a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Name) and owner.id == "argparse":
                continue  # argparse._SubParsersAction: the stdlib's only name for the type
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_is_used_across_modules(path: Path) -> None:
    uses = _private_uses(path)
    # a module may call private members of its own classes on other instances
    own = {n.name for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
           if isinstance(n, ast.FunctionDef) and n.name.startswith("_")}
    foreign = [u for u in uses if u.rsplit(".", 1)[-1] not in own]
    assert foreign == [], foreign


def test_the_import_contract_names_every_layer() -> None:
    config = configparser.ConfigParser()
    assert config.read(CONTRACT), CONTRACT
    layers = config["importlinter:contract:layers"]["layers"].split()
    assert set(layers) >= LAYERS
    forbidden = {s: config[s] for s in config.sections() if config[s].get("type") == "forbidden"}
    assert any("cryptography" in c["forbidden_modules"] for c in forbidden.values())
    assert any("dvc_objects" in c["forbidden_modules"] for c in forbidden.values())


def test_hooks_installed_before_the_layered_layout_still_run() -> None:
    """0.1 hook scripts call ``python -m dvc_secure.cli_hooks NAME``."""
    proc = subprocess.run([sys.executable, "-m", "dvc_secure.cli_hooks"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "usage: python -m dvc_secure.cli.hooks" in proc.stderr
