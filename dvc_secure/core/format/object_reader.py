"""Reading an on-remote object, versions 1 and 2 (docs/spec/object-format.md §8).

One pass: authenticate the header (key commitment), open every STREAM segment, compute the
digest the trailer signs (v1: SHA-256 of the payload; v2: the content digest, §6.4) and
check the writer's signature and trust. Pure: works on file-like objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO, Protocol

from dvc_secure.core.format.object_format import (
    HEADER_LEN,
    HEADER_UNSIGNED_LEN,
    TAG_LEN,
    TRAILER,
    TRAILER_LEN,
    VERSION_2,
    BackgroundSha256,
    ObjectHeader,
    ObjectSeal,
    body_len,
    check_object_id,
    derive_object_keys,
    read_exactly,
    signature_message,
    signature_message_v2,
)
from dvc_secure.core.format.primitives import (
    AeadFailure,
    SegmentCipher,
    constant_time_equal,
    ed25519_verify,
    hmac_sha256,
)
from dvc_secure.errors import (
    AuthenticationError,
    SignatureError,
    TrailingDataError,
    TruncationError,
    UntrustedSignerError,
    WrongKeyError,
)

# (signer public key, the object's key epoch) -> trusted? Epoch-aware so a removed
# writer stays trusted for the epochs it could write in, and only those.
TrustedSigners = Callable[[bytes, int], bool]


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


def decrypt_object(
    source: BinaryIO,
    sink: _Sink,
    *,
    object_id: bytes,
    key_for_epoch: Callable[[int], bytes],
    is_trusted_signer: TrustedSigners,
    plaintext_sha256: bool = True,
) -> ObjectSeal:
    """Authenticate and decrypt one object from ``source`` into ``sink``.

    ``sink`` receives only AEAD-authenticated payload bytes, but the object as a whole is
    valid only if this returns: callers must write to a temporary place and discard it on
    any exception. ``plaintext_sha256=False`` skips the payload's SHA-256 where the format
    does not need it (version 2), e.g. on a pull: then the seal's ``plaintext_sha256`` is
    None and its ``ciphertext_sha256`` is the stored object's digest.
    """
    check_object_id(object_id)
    raw_header = read_exactly(source, HEADER_LEN)
    header = ObjectHeader.parse(raw_header)
    unsigned = raw_header[:HEADER_UNSIGNED_LEN]
    data_key = key_for_epoch(header.epoch)
    seg_key, commit_key = derive_object_keys(data_key, unsigned, object_id)
    if not constant_time_equal(hmac_sha256(commit_key, unsigned), header.mac):
        raise WrongKeyError(
            f"object header does not authenticate under key epoch {header.epoch} for "
            f"'{object_id.decode(errors='replace')}': the object was swapped from another "
            "name, or its header is corrupted",
            hint="run 'dvc-secure verify --remote' and re-push the object from a clean cache",
        )
    digests = _ReadDigests(header.version, raw_header, plaintext_sha256)
    try:
        return _decrypt_segments(
            source, sink, SegmentCipher(seg_key), header, raw_header, object_id, digests,
            is_trusted_signer,
        )
    finally:
        digests.close()


class _ReadDigests:
    """The digests a reader computes in its one pass (spec §6.4, §8.1 step 7).

    Version 1: SHA-256 of the payload. Version 2: the content digest, i.e. the header and
    the ciphertext of every payload-only segment, then the payload bytes after them; the
    same state, continued with the remaining ciphertext, is the stored object's digest.
    """

    def __init__(self, version: int, raw_header: bytes, want_payload_sha256: bool) -> None:
        self.v2 = version == VERSION_2
        self.payload = BackgroundSha256() if want_payload_sha256 or not self.v2 else None
        self.ciphertext = BackgroundSha256() if self.v2 else None
        if self.ciphertext is not None:
            self.ciphertext.update(raw_header)
        self._held_ciphertext: list[bytes] = []  # segments carrying trailer bytes
        self._content_tail: list[bytes] = []  # payload after the payload-only segments
        self.content_digest: bytes | None = None
        self.object_digest: bytes | None = None

    def segment(self, chunk: bytes, payload_only: bool) -> None:
        if self.ciphertext is None:
            return
        if payload_only:
            self.ciphertext.update(chunk)
        else:
            self._held_ciphertext.append(chunk)

    def released(self, data: bytes, payload_only: bool) -> None:
        if self.payload is not None:
            self.payload.update(data)
        if self.ciphertext is not None and not payload_only:
            self._content_tail.append(data)

    def finish(self) -> bytes:
        """The digest the trailer must carry."""
        if self.ciphertext is None:
            assert self.payload is not None
            return self.payload.digest()
        content = self.ciphertext.fork()
        for part in self._content_tail:
            content.update(part)
        for chunk in self._held_ciphertext:
            self.ciphertext.update(chunk)
        self.content_digest = content.digest()
        self.object_digest = self.ciphertext.digest()
        return self.content_digest

    def close(self) -> None:
        for h in (self.payload, self.ciphertext):
            if h is not None:
                h.close()


def _decrypt_segments(
    source: BinaryIO,
    sink: _Sink,
    cipher: SegmentCipher,
    header: ObjectHeader,
    raw_header: bytes,
    object_id: bytes,
    digests: _ReadDigests,
    is_trusted_signer: TrustedSigners,
) -> ObjectSeal:
    seg_ct = header.segment_size + TAG_LEN
    name = object_id.decode(errors="replace")
    payload_len = 0
    tail = bytearray()  # plaintext withheld because it may belong to the trailer
    counter = 0
    current = read_exactly(source, seg_ct)
    if not current:
        raise TruncationError(f"object '{name}' has a header but no segments (truncated)")
    while True:
        nxt = read_exactly(source, seg_ct) if len(current) == seg_ct else b""
        last = not nxt
        try:
            plain = cipher.open(counter, last, current)
        except AeadFailure:
            raise _classify_failure(cipher, counter, last, current, name) from None
        if last and counter and not plain:
            # writers never end on an empty segment: only a key holder re-encoding the stream
            raise AuthenticationError(
                f"object '{name}': its final segment {counter} is empty (not a canonical "
                "encoding; the ciphertext was re-encrypted by a key holder)"
            )
        counter += 1
        if last:
            digests.segment(current, False)
            tail += plain
            break
        # A non-final segment: release everything the trailer cannot reach. With no byte
        # held back, no trailer byte is in it: a payload-only segment (spec §6.4).
        next_plain_len = len(nxt) - TAG_LEN
        hold = max(0, TRAILER_LEN - max(next_plain_len, 0))
        digests.segment(current, not hold)
        if not tail and not hold:  # the common case: no copy
            digests.released(plain, True)
            sink.write(plain)
            payload_len += len(plain)
            current = nxt
            continue
        buf = tail + plain if tail else plain
        cut = len(buf) - hold
        if cut > 0:
            out = bytes(buf[:cut])
            digests.released(out, False)
            sink.write(out)
            payload_len += len(out)
            tail = bytearray(buf[cut:])
        else:
            tail = bytearray(buf)
        current = nxt
    if len(tail) < TRAILER_LEN:
        raise TruncationError(f"object '{name}' is too short to hold its trailer")
    final_payload = bytes(tail[:-TRAILER_LEN])
    if final_payload:
        digests.released(final_payload, False)
        sink.write(final_payload)
        payload_len += len(final_payload)
    size, digest, signer, signature = TRAILER.unpack(bytes(tail[-TRAILER_LEN:]))
    if size != payload_len or not constant_time_equal(digest, digests.finish()):
        raise SignatureError(
            f"object '{name}': decrypted content does not match the digest its writer signed"
        )
    message = (signature_message_v2(object_id, size, digest) if digests.v2
               else signature_message(object_id, raw_header, size, digest))
    if not ed25519_verify(signer, signature, message):
        raise SignatureError(f"object '{name}': the writer signature is invalid")
    if not is_trusted_signer(signer, header.epoch):
        raise UntrustedSignerError(
            f"object '{name}' was written by signing key {signer.hex()[:16]}…, which is not a "
            f"writer in this repository's keyring for key epoch {header.epoch}",
            hint="someone with storage access but no writer role replaced it; re-push from a "
            "trusted clone and run 'dvc-secure verify --remote'",
        )
    return ObjectSeal(
        epoch=header.epoch,
        plaintext_size=payload_len,
        plaintext_sha256=digests.payload.digest() if digests.payload is not None else None,
        signer=signer,
        ciphertext_size=HEADER_LEN + body_len(payload_len, header.segment_size),
        ciphertext_sha256=digests.object_digest,
        version=header.version,
    )


def _classify_failure(cipher: SegmentCipher, counter: int, last: bool, chunk: bytes, name: str) -> Exception:
    try:
        cipher.open(counter, not last, chunk)
    except AeadFailure:
        return AuthenticationError(
            f"object '{name}': segment {counter} failed authentication (corrupted, reordered "
            "or tampered ciphertext)",
            hint="run 'dvc-secure verify --remote' and re-push the object from a clean cache",
        )
    if last:
        return TruncationError(
            f"object '{name}' is truncated: it ends after segment {counter}, which is not final",
            hint="the upload was interrupted or the object was cut; re-push it",
        )
    return TrailingDataError(f"object '{name}' has data after its final segment (extended)")
