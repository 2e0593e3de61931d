"""The hooks' DVC config reader (adapters/dvc/config_file.py) against DVC itself: for
configs that a hand-written reader got wrong, both must name the same default remote and
the same remote URLs, or both must refuse the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvc_secure.adapters.dvc.config_file import dvc_remotes
from dvc_secure.errors import ConfigurationError

CASES = {
    "plain": '[core]\n    remote = vault\n[\'remote "vault"\']\n    url = s3://bucket/x\n',
    "section-case-duplicate": (
        '[core]\n    remote = vault\n[\'remote "vault"\']\n    url = s3://b/x\n'
        '[\'remote "plain"\']\n    url = s3://p/x\n[CORE]\n    remote = plain\n'),
    "section-with-comment": (
        '[\'remote "vault"\']\n    url = s3://b/x\n[core] # the default\n    remote = vault\n'),
    "key-case": '[core]\n    REMOTE = vault\n[\'remote "vault"\']\n    URL = s3://b/x\n',
    "remote-name-case": '[core]\n    remote = Vault\n[\'remote "Vault"\']\n    url = s3://b/x\n',
    "triple-quoted": (
        '[core]\n    remote = plain\n[\'remote "plain"\']\n    url = """s3://p/x"""\n'
        '[\'remote "vault"\']\n    url = s3://b/x\n    region = """\n[core]\n'
        '    remote = vault\n"""\n'),
    "inline-comment": '[core]\n    remote = vault # not plain\n[\'remote "vault"\']\n'
                      '    url = "s3://b/x#y"\n',
    "quoted-value": '[core]\n    remote = "vault"\n[\'remote "vault"\']\n    url = \'s3://b/x\'\n',
    "semicolon-comment": '; a comment\n[core]\n    remote = vault\n',
    "duplicate-section": '[core]\n    remote = vault\n[core]\n    remote = plain\n',
}


def _dvc_view(dvc_dir: Path) -> tuple[str | None, dict[str, str]] | str:
    from configobj import ConfigObjError  # noqa: F401 - DVC wraps it in ConfigError
    from dvc.config import Config, ConfigError

    try:
        if not hasattr(Config, "load_file"):  # DVC 3.0 has no per-file loader to compare with
            pytest.skip("this DVC has no Config.load_file (the reference the reader is compared with)")
        conf = Config.load_file(str(dvc_dir / "config"))
    except ConfigError:
        return "refused"
    remotes = {name: str(r.get("url")) for name, r in conf.get("remote", {}).items()}
    return conf.get("core", {}).get("remote"), remotes


def _our_view(dvc_dir: Path) -> tuple[str | None, dict[str, str]] | str:
    try:
        r = dvc_remotes(dvc_dir)
    except ConfigurationError:
        return "refused"
    return r.default, dict(r.urls)


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_reader_agrees_with_dvc(name: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(tmp_path / "none-system"))
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path / "none-global"))
    dvc_dir = tmp_path / ".dvc"
    dvc_dir.mkdir()
    (dvc_dir / "config").write_text(CASES[name])
    assert _our_view(dvc_dir) == _dvc_view(dvc_dir)
