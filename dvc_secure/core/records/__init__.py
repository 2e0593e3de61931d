"""Signed records committed beside the keyring (re-encryption records, ...)."""
