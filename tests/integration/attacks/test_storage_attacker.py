"""Adversarial review (issue 13 item 6), capability *storage write*: the provider, or
anyone with write access to the bucket, changes what is stored between a push and a
pull / a verification.

Older tests of the same capability: ``tests/integration/test_failures.py`` (flipped byte,
cut at a segment boundary, last bytes missing, object swapped onto another name, validly
encrypted replacement without a writer key, killed / failing uploads),
``test_sidecar_history.py`` (remote object deleted / truncated / corrupted / swapped, remote
manifest tampered, sealed data erased), ``test_repair.py`` (swapped / truncated re-pushed
objects, foreign upload records), ``test_revoked_writer.py``, ``test_audit.py`` (audit
events edited, truncated, deleted)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.sidecar.model import Sidecar
from dvc_secure.core.sidecar.remote_index import index_storage_path
from tests.conftest import DVC_SECURE, run
from tests.integration.attacks.helpers import add_and_push, finding_codes
from tests.integration.secure_helpers import (
    check_failed,
    files_under,
    hidden_rel_with,
    object_rel,
)
from tests.integration.test_access import KEYRING, Person, grant, wipe


def _index_of(repo, metafile: str) -> Path:  # type: ignore[no-untyped-def]
    sc = Sidecar.from_bytes((repo.root / f"{metafile}.seal").read_bytes(), metafile)
    digest = sc.outputs[0].remote_index
    assert digest
    return repo.storage / index_storage_path(digest)


def test_attack_remote_index_replaced_by_an_older_valid_index(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    """The index that pins version 2's ciphertext is overwritten with version 1's (a valid
    index, by the same writer), then deleted: neither passes ``verify --remote``."""
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"version one\n")
    old_index = _index_of(repo, "a.txt.dvc")
    add_and_push(repo, "a.txt", b"version two\n")
    new_index = _index_of(repo, "a.txt.dvc")
    assert old_index != new_index and new_index.is_file()
    assert finding_codes(repo, "--remote", "--all-revisions") == (0, [])

    new_index.write_bytes(old_index.read_bytes())
    rc, codes = finding_codes(repo, "--remote")
    assert rc == 1 and codes == ["remote-index-corrupted"], codes
    new_index.unlink()
    rc, codes = finding_codes(repo, "--remote")
    assert rc == 1 and codes == ["remote-index-missing"], codes


def test_attack_old_epoch_ciphertext_replayed_after_revoke_reencrypt(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """After ``revoke bob --reencrypt`` the stored object is under the new epoch; someone
    with storage access (bob, or the provider on his behalf) puts the pre-revocation
    ciphertext back under the same name, so that bob's old key opens the current object."""
    repo = make_secure_repo()
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "writer")
    add_and_push(repo, "a.txt", b"current rows\n")
    before = {p: p.read_bytes() for p in files_under(repo.storage)
              if "dvc-secure" not in p.relative_to(repo.storage).parts}
    repo.secure("revoke", "bob", "--reencrypt")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "revoke bob, re-encrypt")
    assert finding_codes(repo, "--remote") == (0, [])
    replayed = [p for p, data in before.items() if p.read_bytes() != data]
    assert replayed, "re-encryption rewrote the object in place"
    for path in replayed:
        path.write_bytes(before[path])
    rc, codes = finding_codes(repo, "--remote")
    assert rc == 1 and "remote-object-corrupted" in codes, codes
    out = run([*DVC_SECURE, "verify", "--remote"], repo.root, repo.env, check=False)
    assert "re-encryption record .dvc/secure/reencrypted/epoch-" in out.stdout, out.stdout
    assert "dvc-secure repair -r vault" in out.stdout, out.stdout
    # the fix the finding names: push it again under the current epoch
    repo.secure("repair", "-r", "vault")
    assert finding_codes(repo, "--remote") == (0, [])


def test_attack_object_squatted_at_its_name_before_the_writer_pushes(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A reader (or revoked member: the name secret is not rotated) with storage write access
    knows content a writer is about to push (a public file, a predictable export) and plants
    garbage under its hidden name first. DVC sees the object as already pushed and skips it.
    The seal must not pin the garbage as the sealed ciphertext; ``verify --remote`` must say
    the revision cannot be pulled back."""
    repo = make_secure_repo()
    rita = Person(repo, tmp_path, "rita")
    grant(repo, rita, "reader")
    content = b"the export everyone can predict\n" * 100
    ring = Keyring.from_json((repo.root / KEYRING).read_text())
    keys = ring.unwrap(Identity.from_text(rita.file.read_text(), "rita"))
    rel = object_rel(hashlib.md5(content).hexdigest())
    squat = repo.storage / hidden_rel_with(ring.remotes, keys.name_secret, rel)
    squat.parent.mkdir(parents=True, exist_ok=True)
    squat.write_bytes(os.urandom(len(content) + 200))

    (repo.root / "export.csv").write_bytes(content)
    repo.dvc("add", "-q", "export.csv")
    repo.dvc("push", "-q")  # DVC believes the object is already there
    text = check_failed(repo.secure("seal", "export.csv.dvc", check=False),
                        "not a valid object of this repository", "planted", "delete")
    assert squat.relative_to(repo.storage).as_posix() in text
    assert not (repo.root / "export.csv.dvc.seal").exists()
    # the remedy the message gives works: delete, push, seal; the revision verifies
    squat.unlink()
    repo.dvc("push", "-q")
    repo.secure("seal", "export.csv.dvc")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "export")
    assert finding_codes(repo, "--remote") == (0, [])
    shutil.rmtree(repo.root / ".dvc" / "cache")
    wipe(repo, "export.csv")
    repo.dvc("pull", "-q")
    assert (repo.root / "export.csv").read_bytes() == content

