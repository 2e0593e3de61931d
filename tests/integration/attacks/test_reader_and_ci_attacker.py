"""Adversarial review (issue 13 item 6), capabilities *reader* and *compromised CI
variable*: a member granted read access (or a demoted writer who kept his signing key)
tries to act as a writer or admin; a CI job's reader identity, given in
``DVC_SECURE_IDENTITY``, is used to write; a garbled CI secret must never be echoed.

Older tests of the same capabilities: ``tests/integration/test_access.py::
test_reader_cannot_seal_or_push``, ``test_failures.py::test_reader_identity_can_pull_but_
cannot_push``, ``test_failures.py::test_validly_encrypted_replacement_without_writer_key_is_
untrusted``, ``test_repair.py::test_upload_record_signed_by_reader_rejected``,
``test_reencrypt.py::test_reader_may_not_reencrypt``, ``test_env_secrets.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY, ENV_IDENTITY_FILE
from tests.conftest import DVC, DVC_SECURE, SecureRepo, run
from tests.integration.attacks.helpers import (
    add_and_push,
    finding_codes,
    forge_sidecar,
    identity_of,
)
from tests.integration.secure_helpers import assert_no_key_material, check_failed, secrets_of
from tests.integration.test_access import (
    KEYRING,
    Person,
    commit_keyring,
    grant,
    storage_snapshot,
    wipe,
)


def test_attack_reader_grants_himself_writer_or_changes_the_policy(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    rita = Person(repo, tmp_path, "rita")
    grant(repo, rita, "reader")
    keyring = (repo.root / KEYRING).read_bytes()
    attempts = [
        ("grant", rita.recipient, "--role", "writer", "--signing-key", rita.signing_key,
         "--name", "rita"),
        ("grant", rita.recipient, "--role", "admin", "--signing-key", rita.signing_key,
         "--name", "rita"),
        ("revoke", "alice"),
        ("rotate",),
        ("threshold", "1"),
        ("remote-policy", "--update"),
    ]
    for args in attempts:
        check_failed(rita.secure(*args, check=False), "only admins", "role: reader")
    assert (repo.root / KEYRING).read_bytes() == keyring
    assert not (repo.root / ".dvc/secure/keyring.pending.json").exists()


def test_attack_demoted_writer_signs_a_sidecar_with_his_kept_signing_key(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Bob was a writer; demoted to reader, he still has his signing key (in his identity
    file, and in the keyring). He re-signs a sidecar by hand, declassifying a dataset."""
    repo = make_secure_repo()
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "writer")
    add_and_push(repo, "a.txt", b"confidential rows\n")
    repo.secure("grant", bob.recipient, "--role", "reader", "--name", "bob")
    commit_keyring(repo, "bob becomes a reader")
    assert finding_codes(repo) == (0, [])

    def declassify(sc):  # type: ignore[no-untyped-def]
        return dataclasses.replace(sc, access=dataclasses.replace(sc.access,
                                                                  classification="public"))

    forge_sidecar(repo, "a.txt.dvc", identity_of(bob.file), declassify)
    repo.git("commit", "-q", "-am", "declassify a.txt")
    rc, codes = finding_codes(repo)
    assert rc == 1 and "signed-by-reader" in codes, codes
    # a CI gate over the pushed range says the same
    rc, codes = finding_codes(repo, "--rev", "HEAD~1..HEAD")
    assert rc == 1 and "signed-by-reader" in codes, codes


def _ci_env(repo: SecureRepo, identity_file: Path) -> dict[str, str]:
    """A CI job: the identity exists only as the masked variable DVC_SECURE_IDENTITY."""
    env = {k: v for k, v in repo.env.items() if k != ENV_IDENTITY_FILE}
    env[ENV_IDENTITY] = identity_file.read_text()
    return env


def test_attack_ci_reader_identity_used_to_write(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A pull-only CI job's reader identity leaks (or the job is edited to push): with it,
    nothing can be pushed, sealed or granted, and no key material is printed."""
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"training rows\n")
    ci = Person(repo, tmp_path, "ci-reader")
    grant(repo, ci, "reader")
    env = _ci_env(repo, ci.file)
    secrets = secrets_of(repo) + secrets_of(repo, identity_file=ci.file)

    wipe(repo, "a.txt")
    run([*DVC, "pull", "-q"], repo.root, env)  # what the job is for
    assert (repo.root / "a.txt").read_bytes() == b"training rows\n"

    before = storage_snapshot(repo)
    keyring = (repo.root / KEYRING).read_bytes()
    (repo.root / "a.txt").write_bytes(b"poisoned rows\n")
    run([*DVC, "add", "-q", "a.txt"], repo.root, env)
    outputs = [
        check_failed(run([*DVC, "push"], repo.root, env, check=False),
                     "may not push", "role: reader"),
        check_failed(run([*DVC_SECURE, "seal", "a.txt.dvc"], repo.root, env, check=False),
                     "may not push", "role: reader"),
        check_failed(run([*DVC_SECURE, "grant", ci.recipient, "--role", "writer",
                          "--signing-key", ci.signing_key], repo.root, env, check=False),
                     "only admins"),
    ]
    for text in outputs:
        assert_no_key_material(text, secrets)
    assert storage_snapshot(repo) == before
    assert (repo.root / KEYRING).read_bytes() == keyring
    assert repo.git("status", "--porcelain", "a.txt.dvc.seal").stdout == ""


def test_attack_garbled_ci_identity_variable_is_never_echoed(pushed_repo: SecureRepo) -> None:
    """A CI secret pasted wrongly (truncated, wrong variable) makes commands fail; the error
    must name the variable, never print its value (CI logs are widely readable)."""
    repo = pushed_repo
    secret = "AGE-SECRET-KEY-1QQQSECRETVALUEXYZ7W0RTHPR0TECT1NGZZ9"
    garbled = f"# created: 2026-01-01\n{secret}\nDVCSIGN-SECRET-KEY-1TRUNC"
    env = {k: v for k, v in repo.env.items() if k != ENV_IDENTITY_FILE}
    env[ENV_IDENTITY] = garbled
    wipe(repo, "model.bin")
    for cmd in ([*DVC, "pull", "model.bin.dvc"], [*DVC_SECURE, "whoami"],
                [*DVC, "push", "-r", "vault"]):
        proc = run(cmd, repo.root, env, check=False)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0, text
        assert ENV_IDENTITY in text, text
        assert "Traceback" not in text, text
        for fragment in ("QQQSECRETVALUE", "R0TECT1NG", "1TRUNC"):
            assert fragment.lower() not in text.lower(), text
    assert not (repo.root / "model.bin").exists()


def test_attack_ci_log_of_verbose_and_diagnostic_commands_carries_no_identity(
        pushed_repo: SecureRepo) -> None:
    """Whoever reads a CI log (every contributor, often the public) looks for the identity
    in what the job printed: verbose DVC output, diagnostics, failures."""
    repo = pushed_repo
    env = _ci_env(repo, repo.identity_file)
    secrets = secrets_of(repo)
    wipe(repo, "model.bin")
    commands = [
        [*DVC, "pull", "-v", "model.bin.dvc"],
        [*DVC, "doctor"],
        [*DVC, "config", "--list"],
        [*DVC, "pull", "no-such-file.dvc"],
        [*DVC_SECURE, "doctor"],
        [*DVC_SECURE, "whoami"],
        [*DVC_SECURE, "verify", "--json"],
        [*DVC_SECURE, "seal", "no-such-file.dvc"],
    ]
    for cmd in commands:
        proc = run(cmd, repo.root, env, check=False)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        assert_no_key_material(proc.stdout + proc.stderr, secrets)
    assert (repo.root / "model.bin").is_file()  # the identity did work
