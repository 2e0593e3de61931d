"""The plugin manifest (.dvc-plugin.toml) is what docs and code cite: keep them equal."""

from __future__ import annotations

from dvc_secure.adapters.git.hooks import CHECKED_HOOKS
from dvc_secure.adapters.local.plugin_manifest import load_manifest


def test_manifest_lists_exactly_the_hooks_install_writes() -> None:
    assert load_manifest().hooks == CHECKED_HOOKS


def test_manifest_options_have_secure_defaults() -> None:
    manifest = load_manifest()
    assert manifest.option("hide_names").default is True
    assert manifest.option("allow_gc_sealed").default is False
