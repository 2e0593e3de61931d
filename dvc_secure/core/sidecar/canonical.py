"""Canonical JSON bytes (sorted keys, no spaces, ASCII): what sidecars and remote indexes
sign and digest. Its own module so that the remote index (imported by every push and
pull, through the push journal) does not import the whole sidecar model."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
