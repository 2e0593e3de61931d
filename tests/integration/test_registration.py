"""How dvc-secure plugs into DVC: the import hook, the three patches and their guards.

DVC has no plugin entry points for remotes (DESIGN.md §3): a ``.pth`` import hook patches
three DVC modules right after DVC imports them. These tests check that plain ``dvc``, the
Python API in and out of this process, and ``dvc doctor`` all see the ``secure`` scheme; that
the hook costs nothing until DVC is imported; and that every patch refuses a DVC whose
internals have an unexpected shape instead of running half-registered.
"""

from __future__ import annotations

import copy
import re
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.errors import RegistrationError
from tests.conftest import SecureRepo, run
from tests.integration.secure_helpers import (
    dataset_files,
    wipe_cache_and_workspace,
    workspace_files,
)

PY = sys.executable


def test_dvc_doctor_lists_secure_with_its_package(dataset_repo: SecureRepo) -> None:
    out = dataset_repo.dvc("doctor").stdout
    assert re.search(r"^\s*Remotes: .*\bsecure\b", out, re.M), out
    supports = out.split("Supports:", 1)[1].split("Config:", 1)[0]
    assert re.search(r"^\s*secure \(dvc-secure = \d+\.\d+", supports, re.M), out


def test_dvc_repo_api_push_pull_in_this_process(dataset_repo: SecureRepo,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from dvc.repo import Repo

    from dvc_secure.adapters.dvc.registration import is_registered
    from dvc_secure.plugin import register

    repo = dataset_repo
    for key in ("HOME", "XDG_CONFIG_HOME", "DVC_SITE_CACHE_DIR", "DVC_NO_ANALYTICS",
                "DVC_SECURE_IDENTITY_FILE"):
        monkeypatch.setenv(key, repo.env[key])
    if not is_registered():
        # DVC 3.0 ships a pytest11 entry point, so pytest's assertion-rewriting importer loads
        # every dvc.* module ahead of our finder: the documented explicit register() applies
        # (auto-registration is covered by the fresh-process tests)
        register()
    assert is_registered()
    with Repo(str(repo.root)) as dvc:
        assert dvc.push() == 7
    assert len(repo.stored_objects()) == 7
    wipe_cache_and_workspace(repo)
    with Repo(str(repo.root)) as dvc:
        stats = dvc.pull()
    assert stats.get("stats", stats)["fetched"] == 7  # DVC < 3.x: no "stats" level
    assert workspace_files(repo) == dataset_files()


_OUT_OF_PROCESS = """
import shutil, sys
from pathlib import Path
from dvc.repo import Repo
with Repo(".") as dvc:
    pushed = dvc.push()
shutil.rmtree(".dvc/cache")
shutil.rmtree("data")
Path("model.bin").unlink()
with Repo(".") as dvc:
    stats = dvc.pull()
print(pushed, stats.get("stats", stats)["fetched"], Path("data/nested/deeper/b.bin").stat().st_size)
"""


def test_dvc_repo_api_push_pull_in_a_fresh_process(dataset_repo: SecureRepo) -> None:
    """A plain ``python`` that imports dvc: only the .pth import hook registers the plugin."""
    repo = dataset_repo
    out = run([PY, "-c", _OUT_OF_PROCESS], repo.root, repo.env).stdout.split()
    assert out == ["7", "7", "3000"]
    # every object is ciphertext; dvc-secure/ holds the plaintext upload record of the push
    stored = [p for p in repo.stored_objects()
              if "dvc-secure" not in p.relative_to(repo.storage).parts]
    assert len(stored) == 7 and all(p.read_bytes().startswith(b"DVCSEC") for p in stored)
    assert workspace_files(repo) == dataset_files()


# --- the import hook ----------------------------------------------------------------------------


def test_import_hook_is_installed_by_pth_and_imports_no_dvc(tmp_path: Path,
                                                          isolated_env: dict[str, str]) -> None:
    code = (
        "import sys; import dvc_secure._startup as s\n"
        "assert any(isinstance(f, s.DvcSecureFinder) for f in sys.meta_path)\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('dvc', 'dvc_objects', 'dvc_data', 'cryptography', 'voluptuous', 'fsspec')]\n"
        "assert not heavy, heavy\n"
        "print(sorted(m for m in sys.modules if m.startswith('dvc_secure')))\n"
    )
    out = run([PY, "-c", code], tmp_path, isolated_env).stdout
    assert out.strip() == "['dvc_secure', 'dvc_secure._startup']"


def test_import_hook_startup_cost_stays_small(tmp_path: Path,
                                              isolated_env: dict[str, str]) -> None:
    best = None
    for _ in range(3):  # the best of three: CI machines are noisy
        err = run([PY, "-X", "importtime", "-c", "pass"], tmp_path, isolated_env).stderr
        match = re.search(r"import time:\s+\d+ \|\s+(\d+) \|\s+dvc_secure\._startup$", err, re.M)
        assert match, "dvc_secure._startup was not imported at startup (is the .pth installed?)"
        micros = int(match.group(1))
        best = micros if best is None else min(best, micros)
    assert best is not None and best < 20_000, f"import hook costs {best} us at every start-up"


def test_import_hook_patches_dvc_when_dvc_is_imported(tmp_path: Path,
                                                      isolated_env: dict[str, str]) -> None:
    code = (
        "import dvc.fs\n"
        "from dvc_secure.adapters.dvc.registration import is_registered\n"
        "import dvc.config_schema as cs\n"
        "assert is_registered()\n"
        "cs.SCHEMA['remote'][str]({'url': 'secure://storage'})\n"
        "print('ok')\n"
    )
    assert run([PY, "-c", code], tmp_path, isolated_env).stdout.strip() == "ok"


def test_import_hook_fails_closed_on_unsupported_dvc_version(
        tmp_path: Path, isolated_env: dict[str, str]) -> None:
    code = "import dvc; dvc.__version__ = '4.0.0'\nimport dvc.fs\n"
    proc = run([PY, "-c", code], tmp_path, isolated_env, check=False)
    assert proc.returncode != 0
    assert "RegistrationError" in proc.stderr
    assert "cannot register with DVC 4.0.0" in proc.stderr


# --- shape checks: every patch refuses a surprise ------------------------------------------------


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod



def _has_remote_schemas() -> bool:
    import dvc.config_schema as cs

    return hasattr(cs, "REMOTE_SCHEMAS")


needs_remote_schemas = pytest.mark.skipif(
    not _has_remote_schemas(),
    reason="builds fake modules from REMOTE_SCHEMAS, which DVC only has from 3.64; the real "
    "patch of the ByUrl closure is exercised on this DVC by every subprocess test",
)

def _fresh_config_schema(**overrides: Any) -> types.ModuleType:
    """A copy of dvc.config_schema's relevant parts with a pristine ByUrl closure."""
    import dvc.config_schema as cs

    from dvc_secure.adapters.local.plugin_manifest import load_manifest

    scheme = load_manifest().scheme
    remote_schemas = {k: v for k, v in cs.REMOTE_SCHEMAS.items() if k != scheme}
    attrs: dict[str, Any] = {
        "SCHEMA": {"remote": {str: cs.ByUrl(remote_schemas)}},
        "REMOTE_SCHEMAS": remote_schemas,
        "REMOTE_COMMON": cs.REMOTE_COMMON,
        "Bool": cs.Bool,
    }
    attrs.update(overrides)
    return _module("dvc.config_schema", **attrs)


def _raises_registration_error(fn: Any, *args: Any, match: str) -> None:
    with pytest.raises(RegistrationError, match=match) as info:
        fn(*args)
    assert "cannot register with DVC" in str(info.value)
    assert info.value.hint and ".dvc-plugin.toml" in info.value.hint


def test_fs_registry_patch_refuses_unexpected_shapes() -> None:
    from dvc_secure.adapters.dvc.registration import patch_fs_registry

    s3 = {"class": "dvc_s3.S3FileSystem", "err": "s3 needs dvc-s3"}
    for table in ([("s3", s3)], {"gs": s3}, {"s3": "dvc_s3.S3FileSystem"}, None):
        mod = _module("dvc_objects.fs", known_implementations=table)
        _raises_registration_error(patch_fs_registry, mod, match="known_implementations")
    taken = {"s3": s3, "secure": {"class": "other.plugin.Fs"}}
    _raises_registration_error(patch_fs_registry, _module("x", known_implementations=taken),
                               match="already registered")


@needs_remote_schemas
def test_config_schema_patch_refuses_unexpected_shapes() -> None:
    from dvc_secure.adapters.dvc.registration import patch_config_schema

    def no_closure(data: Any) -> Any:
        return data

    cases = [
        (_fresh_config_schema(SCHEMA={"remote": {str: no_closure}}), "closure"),
        (_fresh_config_schema(SCHEMA={"remote": {}}), "SCHEMA"),
        (_fresh_config_schema(SCHEMA=None), "SCHEMA"),
        (_fresh_config_schema(REMOTE_SCHEMAS=[("", {})]), "REMOTE_SCHEMAS"),
        (_fresh_config_schema(REMOTE_COMMON=None), "REMOTE_COMMON"),
    ]
    for mod, match in cases:
        _raises_registration_error(patch_config_schema, mod, match=match)


def test_fs_module_patch_refuses_unexpected_shapes() -> None:
    from dvc_secure.adapters.dvc.registration import patch_fs_module

    def resolve_v2(config: Any, remote_conf: Any, strict: bool = True) -> Any:
        return remote_conf

    def resolve(config: Any, remote_conf: Any) -> Any:
        return remote_conf

    def get_fs_config(config: Any, **kwargs: Any) -> Any:
        return {}

    cases = [
        (_module("dvc.fs", _resolve_remote_refs=resolve_v2, get_fs_config=get_fs_config),
         "signature"),
        (_module("dvc.fs", get_fs_config=get_fs_config), "missing"),
        (_module("dvc.fs", _resolve_remote_refs="not callable", get_fs_config=get_fs_config),
         "missing"),
        (_module("dvc.fs", _resolve_remote_refs=resolve), "get_fs_config"),
    ]
    for mod, match in cases:
        _raises_registration_error(patch_fs_module, mod, match=match)
        assert getattr(mod, "_resolve_remote_refs", None) in (resolve_v2, resolve, None,
                                                               "not callable")


def test_dvc_version_outside_supported_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import dvc

    from dvc_secure.adapters.dvc.registration import check_dvc_version
    from dvc_secure.adapters.local.plugin_manifest import load_manifest

    for version in ("2.58.2", "4.0.0", "10.1"):
        monkeypatch.setattr(dvc, "__version__", version)
        _raises_registration_error(check_dvc_version, match="outside the supported range")
    newest = load_manifest().max_dvc
    monkeypatch.setattr(dvc, "__version__", f"{newest[0]}.{newest[1] + 1}.0")
    with pytest.warns(UserWarning, match="passed the registration shape checks"):
        check_dvc_version()
    monkeypatch.setattr(dvc, "__version__", ".".join(map(str, newest)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_dvc_version()


@needs_remote_schemas
def test_patches_on_fresh_modules_are_idempotent() -> None:
    from dvc_secure.adapters.dvc.registration import (
        _RefuseNamelessSecure,
        patch_config_schema,
        patch_fs_module,
        patch_fs_registry,
    )

    s3 = {"class": "dvc_s3.S3FileSystem"}
    reg = _module("dvc_objects.fs", known_implementations={"s3": s3})
    for _ in range(3):
        patch_fs_registry(reg)
    assert set(reg.known_implementations) == {"s3", "secure"}

    schema_mod = _fresh_config_schema()
    for _ in range(3):
        patch_config_schema(schema_mod)
    closure = _closure_of(schema_mod.SCHEMA["remote"][str])
    assert isinstance(closure[""], _RefuseNamelessSecure)
    assert not isinstance(closure[""].local, _RefuseNamelessSecure)

    def resolve(config: Any, remote_conf: Any) -> Any:
        return remote_conf

    def get_fs_config(config: Any, **kwargs: Any) -> Any:
        return _resolve_remote_refs(config, kwargs)  # type: ignore[name-defined]  # noqa: F821

    fs_mod = _module("dvc.fs", _resolve_remote_refs=resolve, get_fs_config=get_fs_config)
    for _ in range(3):
        patch_fs_module(fs_mod)
    assert fs_mod._resolve_remote_refs.__wrapped__ is resolve
    assert fs_mod._resolve_remote_refs(None, {"url": "s3://b"}) == {"url": "s3://b"}


def test_patch_refuses_a_get_fs_config_that_bypasses_the_resolver() -> None:
    """The remote pin is enforced in _resolve_remote_refs: if DVC stopped resolving named
    remotes through it, the plugin must refuse to register (fail closed)."""
    from dvc_secure.adapters.dvc.registration import patch_fs_module
    from dvc_secure.errors import RegistrationError

    def resolve(config: Any, remote_conf: Any) -> Any:
        return remote_conf

    fs_mod = _module("dvc.fs", _resolve_remote_refs=resolve,
                     get_fs_config=lambda config, **kwargs: kwargs)
    with pytest.raises(RegistrationError, match="no longer resolves remotes"):
        patch_fs_module(fs_mod)


def _closure_of(validator: Any) -> dict[str, Any]:
    for cell in validator.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, dict) and "" in value:
            return value
    raise AssertionError("no schema table in the validator's closure")


def test_register_is_idempotent_on_the_real_dvc() -> None:
    import dvc.config_schema as cs
    import dvc.fs
    import dvc_objects.fs

    from dvc_secure.adapters.dvc.registration import (
        _RefuseNamelessSecure,
        is_registered,
        register,
    )

    register()
    resolver = dvc.fs._resolve_remote_refs
    entry = dict(dvc_objects.fs.known_implementations["secure"])
    register()
    register()
    assert is_registered()
    assert dvc.fs._resolve_remote_refs is resolver
    assert not getattr(resolver.__wrapped__, "_dvc_secure_patched", False)
    assert dvc_objects.fs.known_implementations["secure"] == entry
    local = _closure_of(cs.SCHEMA["remote"][str])[""]
    assert isinstance(local, _RefuseNamelessSecure)
    assert not isinstance(local.local, _RefuseNamelessSecure)


# --- URL validation with and without the plugin --------------------------------------------------


@needs_remote_schemas
def test_plain_dvc_rejects_secure_urls_but_would_take_nameless_ones_as_local_paths() -> None:
    """What DVC does without the plugin: ``secure://name`` is refused (good), while
    ``secure:///x`` passes as a local path, which is why the plugin guards it."""
    import dvc.config_schema as cs
    from voluptuous import Invalid

    unpatched = cs.ByUrl({k: copy.copy(v) for k, v in cs.REMOTE_SCHEMAS.items() if k != "secure"})
    with pytest.raises(Invalid, match="Unsupported URL type secure://"):
        unpatched({"url": "secure://storage"})
    assert unpatched({"url": "secure:///x"})["url"] == "secure:///x"


@pytest.mark.parametrize("url", [
    "secure:///x", "secure:x", "secure:/x", "SECURE:x", "secure:", "../secure:x",
    "/repo/.dvc/secure:x", "/repo/.dvc/secure:x/sub",
])
def test_patched_validator_refuses_every_nameless_secure_url(url: str) -> None:
    import dvc.config_schema as cs
    from voluptuous import Invalid

    with pytest.raises(Invalid, match="has no remote name"):
        cs.SCHEMA["remote"][str]({"url": url})


@pytest.mark.parametrize("url", [
    "secure://storage", "secure://storage/sub/dir", "/data/store", "../store", "s3://bucket/p",
])
def test_patched_validator_accepts_named_secure_and_other_urls(url: str) -> None:
    import dvc.config_schema as cs

    conf = cs.SCHEMA["remote"][str]({"url": url})
    assert conf["url"] == url
    if url.startswith("secure://"):
        assert conf["hide_names"] is True  # the manifest's defaults apply
