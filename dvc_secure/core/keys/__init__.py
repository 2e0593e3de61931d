"""Identities, recipients and the repository keyring (pure: no file or network I/O)."""
