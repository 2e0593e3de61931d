"""Objects signed by a *former* signer must be what their name says (issue 13 item 3).

A removed writer stays a trusted object signer for the epochs they held
(docs/spec/keyring.md §4a), and the header epoch is theirs to write: with an old epoch key,
the name secret and storage write access they could replace any object with validly
encrypted, validly signed *other* content. So an object whose signer is a former signer is
accepted only when its content is what its name says: the MD5 of the plaintext equals
DVC's object id (``files/md5/xx/yyyy[.dir]``), or the SHA-256 equals a dvc-secure manifest's
name. Any other name signed by a former signer is refused.

The MD5 is computed in the same pass as the decryption, and only for objects whose header
epoch a former signer held (after ``revoke --reencrypt`` current data lives in a newer
epoch and costs nothing extra). Objects of current writers are unaffected (ADR 0001).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol, cast

from dvc_secure.adapters.local.repo_keys import RepoKeys
from dvc_secure.core.format.domain_keys import header_authenticates
from dvc_secure.core.format.object_format import (
    HEADER_LEN,
    MAGIC,
    VERSION_2,
    ObjectHeader,
    ObjectSeal,
)
from dvc_secure.core.format.object_reader import decrypt_object
from dvc_secure.errors import (
    ContentMismatchError,
    DvcSecureError,
    ObjectFormatError,
    WrongKeyError,
)

DVC3_OBJECT = re.compile(r"^files/md5/([0-9a-f]{2})/([0-9a-f]{30})(\.dir)?$")
MANIFEST = re.compile(r"^secure/manifests/([0-9a-f]{64})$")


class _Writable(Protocol):
    def write(self, data: bytes) -> Any: ...


class SignerPolicy(Protocol):
    def is_current_writer(self, public: bytes) -> bool: ...

    def content_check_needed(self, epoch: int | None) -> bool: ...


class PeekedSource:
    """A read-only stream whose first ``HEADER_LEN`` bytes were read ahead to learn the epoch."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._head = raw.read(HEADER_LEN)
        self._pos = 0
        self._past_head = False

    def rewind(self) -> None:
        """Start again from the first byte; only while nothing past the header was read."""
        if self._past_head:
            raise ValueError("the stream was read past its header")
        self._pos = 0

    @property
    def head(self) -> bytes:
        return self._head

    def epoch(self) -> int | None:
        try:
            return ObjectHeader.parse(self._head).epoch if len(self._head) == HEADER_LEN else None
        except DvcSecureError:
            return None  # the reader reports the malformed header

    def read(self, n: int = -1) -> bytes:
        self._past_head = self._past_head or n is None or n < 0 or self._pos + n > len(self._head)
        if self._pos < len(self._head):
            if n is None or n < 0:
                out = self._head[self._pos:] + self._raw.read()
                self._pos = len(self._head)
                return out
            out = self._head[self._pos:self._pos + n]
            self._pos += len(out)
            if len(out) < n:
                out += self._raw.read(n - len(out))
            return out
        return self._raw.read(n)


class Md5Sink:
    """Passes bytes on and hashes them (hashlib releases the GIL on large buffers)."""

    def __init__(self, inner: _Writable) -> None:
        self._inner = inner
        self.md5 = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes) -> None:
        self.md5.update(data)
        self._inner.write(data)


def check_former_signer_content(rel: str, seal: ObjectSeal, md5: str | None,
                                signers: SignerPolicy) -> None:
    """Raise unless the object is a current writer's, or its content matches its name."""
    if signers.is_current_writer(seal.signer):
        return
    dvc = DVC3_OBJECT.match(rel)
    manifest = MANIFEST.match(rel)
    if dvc is not None:
        expected, actual, what = dvc.group(1) + dvc.group(2), md5, "MD5"
    elif manifest is not None:
        expected, actual, what = manifest.group(1), seal.payload_sha256().hex(), "SHA-256"
    else:
        raise ContentMismatchError(
            f"object '{rel}' is signed by a former member's key (trusted only for key epochs "
            f"they held; this one is epoch {seal.epoch}) and its name is not a content hash, "
            "so its content cannot be checked: refused",
            hint="a current writer re-pushes it ('dvc push'); to move old data off epochs a "
            "removed writer held: 'dvc-secure rotate --reencrypt'")
    if actual != expected:
        raise ContentMismatchError(
            f"object '{rel}' is signed by a former member's key (epoch {seal.epoch}) and its "
            f"content's {what} does not match its name: someone who kept an old key replaced "
            "it on the storage; refused, nothing was written",
            hint="re-push it from a clean cache ('dvc push'), run 'dvc-secure verify --remote', "
            "and rotate with 'dvc-secure rotate --reencrypt'")


class DomainKeys(Protocol):
    def candidates(self, epoch: int) -> list[bytes]: ...

    def missing(self, rel: str, epoch: int) -> DvcSecureError | None: ...


def _domain_key(src: PeekedSource, rel: str, keys: RepoKeys,
                domains: DomainKeys | None) -> bytes | None:
    """The key domain's key whose header MAC verifies (docs/spec/domain-key.md §4: the key
    commitment tells which key an object is under), for an object whose header did not
    verify under the repository's epoch key; raises why no key opens it, if known."""
    epoch = src.epoch()
    if domains is None or epoch is None:
        return None
    for key in domains.candidates(epoch):
        if header_authenticates(src.head, rel.encode(), key):
            return key
    error = domains.missing(rel, epoch)
    if error is not None:
        raise error
    return None


def decrypt_checked(raw: BinaryIO, sink: _Writable, rel: str, keys: RepoKeys,
                    domains: DomainKeys | None = None, *,
                    plaintext_sha256: bool = True) -> ObjectSeal:
    """``decrypt_object`` with the former-signer content check in the same pass: MD5 is
    computed only when the header epoch is one a former signer held. ``domains``: the key
    domains of the remote (docs/erasure.md); an object is tried under the repository's
    epoch key first, so only domain objects pay a second key derivation.
    ``plaintext_sha256=False`` (a pull) skips the payload's SHA-256 unless the content check
    needs it (a manifest's name is one)."""
    src = PeekedSource(raw)
    hashing = Md5Sink(sink) if keys.content_check_needed(src.epoch()) else None

    def attempt(key_for_epoch: Callable[[int], bytes]) -> ObjectSeal:
        return decrypt_object(
            cast(BinaryIO, src), hashing if hashing is not None else sink,
            object_id=rel.encode(),
            key_for_epoch=key_for_epoch,
            is_trusted_signer=keys.is_trusted_signer,
            plaintext_sha256=plaintext_sha256 or MANIFEST.match(rel) is not None,
        )

    try:
        seal = attempt(keys.keyset.key_for_epoch)
    except WrongKeyError:  # raised on the header alone: nothing was written yet
        key = _domain_key(src, rel, keys, domains)
        if key is None:
            raise
        src.rewind()
        seal = attempt(lambda _epoch: key)
    check_former_signer_content(rel, seal, hashing.md5.hexdigest() if hashing else None, keys)
    return seal


class _HashingReader:
    """Reads a stored object and hashes its ciphertext on the way, unless its header says
    format version 2, whose reader computes that digest itself (each byte hashed once)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256: Any = None  # hashlib state; None while undecided or not needed
        self._decided = False
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if not self._decided:
            self._decided = True
            v2 = len(data) > 6 and data.startswith(MAGIC) and data[6] == VERSION_2
            self.sha256 = None if v2 else hashlib.sha256()
        if self.sha256 is not None:
            self.sha256.update(data)
        self.size += len(data)
        return data


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def authenticated_ciphertext(raw: BinaryIO, rel: str, where: str, keys: RepoKeys,
                             domains: DomainKeys | None = None) -> tuple[int, str]:
    """Size and SHA-256 of a stored object's ciphertext, read once, *after* it passed every
    check a pull makes (header MAC, STREAM, writer signature, former-signer content check).

    For sealing an object this clone did not upload: whoever can compute hidden names (any
    member, and a revoked one: the name secret is not rotated) and write to the storage can
    plant garbage under an object's name before a writer pushes it; DVC then skips the upload
    as done, and a seal that pinned whatever is stored would make ``verify --remote`` vouch
    for a revision nobody can pull back (issue 13 item 6)."""
    reader = _HashingReader(raw)
    try:
        seal = decrypt_checked(cast(BinaryIO, reader), _Discard(), rel, keys, domains,
                               plaintext_sha256=False)
    except ObjectFormatError as exc:  # a missing epoch key stays what it is
        raise type(exc)(
            f"the object stored at '{where}' for '{rel}' is not a valid object of this "
            f"repository, so it cannot be sealed ({exc.message})",
            hint=f"someone with write access to the storage may have planted it: delete "
            f"'{where}' from the storage, then 'dvc push' and seal again") from None
    for _ in iter(lambda: reader.read(1 << 20), b""):
        pass
    if reader.sha256 is not None:
        return reader.size, reader.sha256.hexdigest()
    if seal.ciphertext_sha256 is None or reader.size != seal.ciphertext_size:
        raise DvcSecureError(f"internal error: no ciphertext digest for '{rel}' at '{where}'")
    return reader.size, seal.ciphertext_sha256.hex()
