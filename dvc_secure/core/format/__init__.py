"""The format layer: the only code that imports ``cryptography``."""
