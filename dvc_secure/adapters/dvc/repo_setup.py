"""Repository set-up through DVC's own config API: find the repo, add the secure remote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from dvc_secure.adapters.local.plugin_manifest import load_manifest
from dvc_secure.errors import ConfigurationError


@dataclass(frozen=True)
class RepoInfo:
    root: Path
    dvc_dir: Path


def find_repo(start: Path | None = None) -> RepoInfo:
    """The nearest directory upwards that holds a ``.dvc`` directory (as DVC finds it),
    without importing DVC: hooks and ``verify`` must start fast."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir():
            return RepoInfo(root=candidate, dvc_dir=candidate / ".dvc")
    raise ConfigurationError("not inside a DVC repository", hint="run 'git init && dvc init' first")


def add_secure_remote(repo: RepoInfo, wrapped: str, name: str, make_default: bool,
                      dry_run: bool = False) -> str:
    """Add remote ``name`` = secure://``wrapped`` to the repo config; returns its URL.
    ``dry_run``: only check that it can be added (raises as the real call would)."""
    from dvc.config import Config

    scheme = load_manifest().scheme
    config = Config(dvc_dir=str(repo.dvc_dir))
    remotes = config.get("remote", {})
    if wrapped not in remotes:
        raise ConfigurationError(
            f"DVC remote '{wrapped}' does not exist",
            hint=f"add it first: dvc remote add {wrapped} <url>",
        )
    if urlparse(str(remotes[wrapped].get("url", ""))).scheme == scheme:
        raise ConfigurationError(f"remote '{wrapped}' is already a secure remote")
    url = f"{scheme}://{wrapped}"
    existing = remotes.get(name)
    if existing is not None and existing.get("url") != url:
        raise ConfigurationError(
            f"a different remote named '{name}' already exists ({existing.get('url')})",
            hint="pick another name with --name",
        )
    if dry_run:
        return url
    with config.edit("repo") as conf:
        conf["remote"].setdefault(name, {})["url"] = url
        if make_default:
            conf["core"]["remote"] = name
    return url
