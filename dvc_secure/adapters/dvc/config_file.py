"""DVC's remote configuration, read from its config files without importing DVC.

The git hooks must start fast: importing DVC costs ~0.2-0.5 s. DVC merges four levels
(system, global, repo, local; later wins); this reader does the same for the
``core`` and ``remote "<name>"`` sections, which is all the hooks and the journal-based
sealing need. It parses with ``configobj`` and post-processes exactly as
``dvc.config.Config.load_file`` does (lower-cased keys, named sections), so the hooks and
DVC can never disagree about which remote a push goes to (a hand-written parser did:
triple-quoted values, ``[CORE]`` beside ``[core]``, ``[core] # comment``;
``tests/unit/adapters/test_config_file_differential.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dvc_secure.errors import ConfigurationError

SECURE_SCHEME = "secure"


_NAMED = re.compile(r'^\s*(remote|machine|db)\s*"(.*)"\s*$')


def _lower_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {k.lower(): _lower_keys(v) if isinstance(v, dict) else v for k, v in data.items()}


def parse_config_text(text: str, source: str = "config") -> dict[str, dict[str, Any]]:
    """One DVC config file as DVC reads it (``dvc.config.Config.load_file``): configobj,
    every key lower-cased (later spelling wins), ``remote "name"`` sections by name.

    Returns ``{"core": {...}, 'remote "name"': {...}, ...}`` (named sections keep their
    quoted form; values are what configobj gives: strings, or lists for ``a, b``). A file
    configobj rejects raises ConfigurationError: DVC refuses it too, and a check must not
    read a different configuration than DVC would.
    """
    from configobj import ConfigObj, ConfigObjError

    try:
        raw = ConfigObj(io.StringIO(text)).dict()
    except ConfigObjError as exc:
        raise ConfigurationError(f"DVC config {source} cannot be parsed: {exc}",
                                 hint=f"fix {source} (DVC refuses it as well)") from None
    out: dict[str, dict[str, Any]] = {}
    for section, values in _lower_keys(raw).items():
        if not isinstance(values, dict):
            continue  # a top-level option: DVC's schema refuses it
        m = _NAMED.match(section)
        key = f'{m.group(1)} "{m.group(2)}"' if m else section
        out[key] = values
    return out


def _parse_config(path: Path, into: dict[str, dict[str, Any]]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"DVC config {path} cannot be read ({exc.__class__.__name__})",
                                 hint=f"check the file's permissions and encoding: {path}") from None
    for section, values in parse_config_text(text, str(path)).items():
        _merge(into.setdefault(section, {}), values)


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    """DVC's level merge (``dvc.config.merge``): nested dicts merged, other values replaced."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def config_paths(dvc_dir: Path) -> tuple[Path, ...]:
    """DVC's config files, lowest precedence first."""
    env = os.environ
    system = Path(env.get("DVC_SYSTEM_CONFIG_DIR", "/etc/xdg/dvc"))
    glob = Path(env.get("DVC_GLOBAL_CONFIG_DIR") or Path(
        env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "dvc")
    return (system / "config", glob / "config", dvc_dir / "config", dvc_dir / "config.local")


@dataclass(frozen=True)
class DvcRemotes:
    default: str | None
    urls: dict[str, str]
    # every option of every ``remote "<name>"`` section, merged over the levels
    sections: dict[str, dict[str, str]] = field(default_factory=dict)

    def url(self, name: str) -> str | None:
        url = self.urls.get(name)
        parsed = urlparse(url or "")
        if url and parsed.scheme == "remote":  # remote://other/sub cross-reference
            base = self.urls.get(parsed.netloc)
            return f"{base.rstrip('/')}{parsed.path}" if base else None
        return url

    def is_secure(self, name: str | None) -> bool:
        url = self.url(name) if name else None
        parsed = urlparse(url or "")
        return parsed.scheme == SECURE_SCHEME and bool(parsed.netloc)

    def secure_names(self) -> list[str]:
        return sorted(n for n in self.urls if self.is_secure(n))

    def fingerprint(self) -> str:
        """Digest of every remote's configuration: any edit (a storage URL, a credential
        option, a new remote) changes it, which invalidates what was learnt under it."""
        doc = {name: dict(sorted(opts.items())) for name, opts in sorted(self.sections.items())}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def dvc_remotes(dvc_dir: Path) -> DvcRemotes:
    """``core.remote`` and the remotes from DVC's config levels (system, global, repo, local),
    parsed and merged as DVC does (configobj; see :func:`parse_config_text`)."""
    conf: dict[str, dict[str, Any]] = {}
    for path in config_paths(dvc_dir):
        _parse_config(path, conf)
    sections = {sec[len('remote "'):-1]: {k: _text(v) for k, v in opts.items()}
                for sec, opts in conf.items() if sec.startswith('remote "')}
    urls = {name: opts["url"] for name, opts in sections.items() if "url" in opts}
    default = conf.get("core", {}).get("remote")
    return DvcRemotes(_text(default) or None if default is not None else None, urls, sections)


def _text(value: Any) -> str:
    """A config value as text: configobj gives lists for ``a, b`` (DVC's schema rejects
    them for a URL or a remote name; shown as written, they never look like secure://)."""
    return value if isinstance(value, str) else ", ".join(map(str, value)) \
        if isinstance(value, list) else str(value)
