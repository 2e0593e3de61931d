"""Reads ``.dvc-plugin.toml``: scheme, remote options with defaults, supported DVC range."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from dvc_secure.errors import RegistrationError

MANIFEST_NAME = ".dvc-plugin.toml"


@dataclass(frozen=True)
class RemoteOption:
    name: str
    type: str
    default: Any
    description: str


@dataclass(frozen=True)
class PluginManifest:
    scheme: str
    filesystem: str
    min_dvc: tuple[int, ...]
    max_dvc: tuple[int, ...]
    below_major: int
    options: tuple[RemoteOption, ...]
    hooks: tuple[str, ...]
    path: Path

    def option(self, name: str) -> RemoteOption:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise KeyError(name)


def parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece else ""
        if not digits:
            break
        parts.append(int(digits))
        if not piece.isdigit():
            break
    return tuple(parts)


def manifest_path() -> Path:
    package = Path(__file__).resolve().parents[2]  # dvc_secure/ (adapters/local/ is two down)
    # a wheel carries it inside the package; a source checkout beside it
    for candidate in (package / MANIFEST_NAME, package.parent / MANIFEST_NAME):
        if candidate.is_file():
            return candidate
    raise RegistrationError(f"{MANIFEST_NAME} is missing from the dvc-secure installation",
                            hint="reinstall dvc-secure")


@lru_cache(maxsize=1)
def load_manifest() -> PluginManifest:
    path = manifest_path()
    with path.open("rb") as f:
        doc = tomllib.load(f)
    try:
        plugin, dvc = doc["plugin"], doc["dvc"]
        options = tuple(
            RemoteOption(name, spec["type"], spec["default"], spec.get("description", ""))
            for name, spec in doc.get("options", {}).items()
        )
        return PluginManifest(
            scheme=plugin["scheme"],
            filesystem=plugin["filesystem"],
            min_dvc=parse_version(dvc["min_version"]),
            max_dvc=parse_version(dvc["max_version"]),
            below_major=int(dvc["below_major"]),
            options=options,
            hooks=tuple(doc.get("hooks", {}).get("installed", [])),
            path=path,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistrationError(f"{path} is malformed ({exc!r})") from None
