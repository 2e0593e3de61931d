"""A PKCS#11 identity on a SoftHSM2 token: generated on the token, pushes (objects signed
there), seals (sidecars signed there), pulls (stanzas opened by ECDH there), and another
member verifies its work; its private keys never leave the token."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from tests.integration.secure_helpers import (
    check_failed,
    dataset_files,
    wipe_cache_and_workspace,
    workspace_files,
)

from .servers import TOKEN_LABEL, run_watching_argv
from .test_kms import make_repo


def test_token_identity_pushes_seals_pulls_and_is_verified(
        tmp_path: Path, isolated_env: dict[str, str], softhsm: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    alice = make_repo(tmp_path, isolated_env, None)
    token_env = {"SOFTHSM2_CONF": softhsm["SOFTHSM2_CONF"],
                 "DVC_SECURE_PKCS11_PIN_FILE": softhsm["pin_file"]}
    bob_file = tmp_path / "bob-identity.txt"
    bob_env = {**alice.env, **token_env, ENV_IDENTITY_FILE: str(bob_file)}
    alice.env.update(token_env)  # the token's configuration (SoftHSM2) and PIN file
    gen = alice.secure("keygen", "--pkcs11", softhsm["module"], "--token", TOKEN_LABEL,
                       "--output", str(bob_file))
    card = dict(line.split(": ", 1) for line in gen.stdout.splitlines() if ": " in line)
    text = bob_file.read_text()
    assert "SECRET-KEY" not in text.upper() and "DVC-SECURE-PKCS11 v1 " in text
    assert oct(bob_file.stat().st_mode & 0o777) == "0o600"

    alice.secure("grant", card["recipient"], "--signing-key", card["signing-key"],
                 "--role", "writer", "--name", "bob")
    alice.git("add", "-A")
    alice.git("commit", "-q", "-m", "grant bob (token)")

    # bob, with the token: push (signs every object on the token) and seal
    alice.env, saved = bob_env, alice.env
    whoami = alice.secure("whoami").stdout
    assert card["recipient"] in whoami and "PKCS#11 token identity file" in whoami
    alice.dvc("push")
    alice.secure("seal", "data", "model.bin")
    alice.git("add", "-A")
    alice.git("commit", "-q", "-m", "bob seals")
    wipe_cache_and_workspace(alice)
    # stanza opened by X25519 on the token; the PIN in no process's arguments meanwhile
    code, pulled, samples = run_watching_argv([sys.executable, "-m", "dvc", "pull"],
                                              alice.root, alice.env, [softhsm["pin"].encode()])
    assert code == 0 and samples > 0, pulled
    assert workspace_files(alice) == dataset_files()
    assert softhsm["pin"] not in pulled + whoami

    # alice (file identity) pulls what bob pushed and verifies bob's seals
    alice.env = saved
    wipe_cache_and_workspace(alice)
    alice.dvc("pull")
    assert workspace_files(alice) == dataset_files()
    verify = alice.secure("verify", "--remote")
    assert "no findings" in verify.stdout
    log = alice.secure("log", "data").stdout
    assert "bob" in log, log

    # a wrong PIN is a clear error, and no key leaves the token
    (tmp_path / "bad-pin").write_text("000000\n")
    (tmp_path / "bad-pin").chmod(0o600)
    bad = {**bob_env, "DVC_SECURE_PKCS11_PIN_FILE": str(tmp_path / "bad-pin")}
    alice.env = bad
    wipe_cache_and_workspace(alice)  # so that the pull really needs the key (DVC 3.0 too)
    check_failed(alice.dvc("pull", check=False), "PIN", "wrong")
    assert workspace_files(alice) == {}
    alice.env = saved
    monkeypatch.setenv("SOFTHSM2_CONF", softhsm["SOFTHSM2_CONF"])
    assert_keys_stay_on_token(softhsm)


def assert_keys_stay_on_token(softhsm: dict[str, str]) -> None:
    import pkcs11

    lib = pkcs11.lib(softhsm["module"])
    token = lib.get_token(token_label=TOKEN_LABEL)
    with token.open(user_pin=softhsm["pin"]) as session:
        keys = list(session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}))
        assert len(keys) == 2
        for key in keys:
            assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]
            assert key[pkcs11.Attribute.NEVER_EXTRACTABLE]
