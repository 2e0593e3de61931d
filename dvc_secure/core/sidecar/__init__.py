"""Sidecars: signed, git-tracked records that pin each dataset revision (pure)."""
