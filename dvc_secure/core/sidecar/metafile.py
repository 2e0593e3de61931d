"""Reading the outputs a DVC metafile (``X.dvc`` or ``dvc.lock``) declares. Pure: bytes in."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from dvc_secure.errors import SidecarError

LOCKFILE = "dvc.lock"


@dataclass(frozen=True)
class DeclaredOutput:
    path: str  # as written in the metafile (relative to the metafile's directory)
    oid: str  # DVC object id, ".dir" suffix for directories
    size: int | None
    nfiles: int | None
    remote: str | None


def is_metafile(path: str) -> bool:
    name = posixpath.basename(path)
    return name == LOCKFILE or (name.endswith(".dvc") and name != ".dvc")


# DVC writes ``.dvc`` files in one plain block style. Reading exactly that shape directly
# spares the git hooks importing PyYAML (~0.12 G instructions, a quarter of a commit that
# changes one dataset). Anything else -- comments, quotes, flow style, nesting, a scalar
# that YAML 1.1 would not read as a plain string or decimal int -- returns None and goes to
# PyYAML, so the result is always what yaml.safe_load gives (tests/unit/core/test_metafile_plain_parser.py).
_ITEM = re.compile(r"(- |  )?([A-Za-z_][A-Za-z0-9_]*):(?: ([^ ].*))?\Z")
_WORD = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*\Z")
_HEXISH = re.compile(r"[0-9][A-Za-z0-9]*(\.dir)?\Z")
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_CONSTANTS: dict[str, object] = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("null", "Null", "NULL", "~"), None),
}
_NO_VALUE = object()


def _scalar(text: str) -> object:
    """A plain scalar as YAML 1.1 reads it, or _NO_VALUE when unsure."""
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if _WORD.match(text):
        return text  # starts with a letter, '_' or '/': no implicit type applies
    if _HEXISH.match(text):
        if text.endswith(".dir"):
            return text
        if _DECIMAL.match(text):
            return int(text)
        if text.isdigit() or text[:2] in ("0b", "0x"):
            return _NO_VALUE  # octal, binary, hex: let PyYAML decide
        return text  # digits and letters, no '.', ':', '-', '_': never a number or date
    return _NO_VALUE


def _load_plain(data: bytes) -> dict[str, Any] | None:
    """The usual ``.dvc`` shape (``key: value`` lines, block lists of flat mappings)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    doc: dict[str, Any] = {}
    seq: list[dict[str, Any]] | None = None
    item: dict[str, Any] | None = None
    pending: str | None = None  # a "key:" line without a value: a list may follow
    for line in text.split("\n"):
        if not line:
            continue
        m = _ITEM.match(line)
        if m is None:
            return None
        lead, key, raw = m.groups()
        value = _NO_VALUE if raw is None else _scalar(raw)
        if raw is not None and value is _NO_VALUE:
            return None
        if _scalar(key) != key:
            return None  # a key YAML would read as a bool or null
        if lead is None:  # top level
            if pending is not None:
                doc[pending] = None
            if key in doc:
                return None
            seq, item, pending = None, None, None
            if raw is None:
                pending = key
            else:
                doc[key] = value
            continue
        if raw is None:
            return None  # a nested collection
        if lead == "- ":
            if pending is not None:
                seq = doc[pending] = []
                pending = None
            if seq is None:
                return None
            item = {}
            seq.append(item)
        elif item is None or key in item:
            return None
        item[key] = value
    if pending is not None:
        doc[pending] = None
    return doc if doc else None


def _load(data: bytes, where: str) -> Any:
    plain = _load_plain(data) if posixpath.basename(where) != LOCKFILE else None
    if plain is not None:
        return plain
    import yaml  # here, not at the top: see _load_plain

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(data, Loader=loader)
    except yaml.YAMLError as exc:
        raise SidecarError(f"{where} is not valid YAML ({exc.__class__.__name__})") from None


def _output(entry: Any, where: str) -> DeclaredOutput | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise SidecarError(f"{where}: an output has no path")
    oid = entry.get("md5") or entry.get("etag") or entry.get("checksum")
    if not isinstance(oid, str):
        return None  # not (yet) computed: nothing to seal
    size, nfiles, remote = entry.get("size"), entry.get("nfiles"), entry.get("remote")
    return DeclaredOutput(
        path=entry["path"],
        oid=oid,
        size=size if isinstance(size, int) else None,
        nfiles=nfiles if isinstance(nfiles, int) else None,
        remote=remote if isinstance(remote, str) else None,
    )


def parse_outputs(data: bytes, where: str) -> dict[str, DeclaredOutput]:
    """Output path -> declared output, for a ``.dvc`` file or a ``dvc.lock``."""
    doc = _load(data, where)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise SidecarError(f"{where}: expected a mapping at the top level")
    entries: list[Any] = []
    if posixpath.basename(where) == LOCKFILE:
        stages = doc.get("stages") or {}
        if not isinstance(stages, dict):
            raise SidecarError(f"{where}: 'stages' must be a mapping")
        for stage in stages.values():
            if isinstance(stage, dict):
                entries.extend(stage.get("outs") or [])
    else:
        entries = doc.get("outs") or []
    if not isinstance(entries, list):
        raise SidecarError(f"{where}: 'outs' must be a list")
    out: dict[str, DeclaredOutput] = {}
    for entry in entries:
        o = _output(entry, where)
        if o is not None:
            out[o.path] = o
    return out
