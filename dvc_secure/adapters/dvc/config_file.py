"""DVC's remote configuration, read from its config files without importing DVC.

The git hooks must start fast: importing DVC costs ~0.2-0.5 s. DVC merges four levels
(system, global, repo, local; later wins); this reader does the same for the
``core`` and ``remote "<name>"`` sections, which is all the hooks and the journal-based
sealing need.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

SECURE_SCHEME = "secure"


def _parse_config(path: Path, into: dict[str, dict[str, str]]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().strip("'")
            section = re.sub(r"\s+", " ", section).replace('"', "")
            into.setdefault(section, {})
        elif section is not None and "=" in line:
            key, _, value = line.partition("=")
            into[section][key.strip().lower()] = value.strip().strip("'\"")


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
    """``core.remote`` and the remotes from DVC's config levels (system, global, repo, local)."""
    conf: dict[str, dict[str, str]] = {}
    for path in config_paths(dvc_dir):
        _parse_config(path, conf)
    sections = {sec[len("remote "):]: opts for sec, opts in conf.items()
                if sec.startswith("remote ")}
    urls = {name: opts["url"] for name, opts in sections.items() if "url" in opts}
    return DvcRemotes(conf.get("core", {}).get("remote") or None, urls, sections)
