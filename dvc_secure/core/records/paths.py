"""Where the git-tracked erasure records live (relative to the repository root).

A module of its own so that asking whether any record exists (every push and pull does,
through the secure filesystem's domain store) does not import the record model."""

from __future__ import annotations

ERASURE_RECORD_DIR = ".dvc/secure/erasures"
