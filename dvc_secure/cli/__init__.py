"""Thin shells: argparse commands and git-hook entry points. Parse, call a service, print,
map errors to exit codes."""
