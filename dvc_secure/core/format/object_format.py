"""On-remote object format v1 (see docs/spec/object-format.md).

``header || STREAM segments``; the STREAM plaintext is ``payload || trailer`` where the
trailer carries the payload length, its SHA-256 and the writer's Ed25519 signature.
Pure: works on file-like objects handed in by the caller, touches no paths.
"""

from __future__ import annotations

import hashlib
import queue
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from dvc_secure.core.format.primitives import (
    AeadFailure,
    SegmentCipher,
    SigningKeyPair,
    constant_time_equal,
    ed25519_verify,
    hkdf_sha256,
    hmac_sha256,
    random_bytes,
)
from dvc_secure.errors import (
    AuthenticationError,
    HeaderError,
    SignatureError,
    TrailingDataError,
    TruncationError,
    UnsupportedVersionError,
    UntrustedSignerError,
    WrongKeyError,
)

MAGIC = b"DVCSEC"
VERSION = 1
SUITE_AES256GCM_HKDF_SHA256_ED25519 = 1
SUPPORTED_SUITES = {SUITE_AES256GCM_HKDF_SHA256_ED25519}
MIN_SEGMENT_LOG2 = 16
MAX_SEGMENT_LOG2 = 24
DEFAULT_SEGMENT_LOG2 = 20  # 1 MiB: AES-GCM throughput plateaus there (DESIGN.md §6)
TAG_LEN = 16
SALT_LEN = 32
MAC_LEN = 32
MAX_OBJECT_ID_LEN = 4096

_HEADER_FIXED = struct.Struct(">6sBBBBI32s")  # magic, version, suite, seglog, flags, epoch, salt
HEADER_UNSIGNED_LEN = _HEADER_FIXED.size  # 46
HEADER_LEN = HEADER_UNSIGNED_LEN + MAC_LEN  # 78

_TRAILER = struct.Struct(">Q32s32s64s")  # payload length, payload sha256, signer, signature
TRAILER_LEN = _TRAILER.size  # 136

KDF_LABEL = b"dvc-secure/v1/object"
SIGNATURE_LABEL = b"dvc-secure/v1/object-signature"


@dataclass(frozen=True)
class ObjectHeader:
    """The fixed-size object header. ``parse`` checks structure only, not the MAC."""

    epoch: int
    salt: bytes
    mac: bytes
    segment_log2: int = DEFAULT_SEGMENT_LOG2
    version: int = VERSION
    suite: int = SUITE_AES256GCM_HKDF_SHA256_ED25519
    flags: int = 0

    @property
    def segment_size(self) -> int:
        return 1 << self.segment_log2

    def unsigned_bytes(self) -> bytes:
        return _HEADER_FIXED.pack(
            MAGIC, self.version, self.suite, self.segment_log2, self.flags, self.epoch, self.salt
        )

    def to_bytes(self) -> bytes:
        return self.unsigned_bytes() + self.mac

    @classmethod
    def parse(cls, data: bytes) -> ObjectHeader:
        if len(data) < HEADER_LEN:
            if len(data) >= 6 and data[:6] != MAGIC:
                raise HeaderError("not a dvc-secure object (bad magic)")
            raise TruncationError(
                f"object is truncated inside its header ({len(data)} of {HEADER_LEN} bytes)"
            )
        magic, version, suite, seglog, flags, epoch, salt = _HEADER_FIXED.unpack_from(data)
        if magic != MAGIC:
            raise HeaderError(
                "not a dvc-secure object (bad magic): the remote holds plaintext or foreign data here",
                hint="check that this remote was only ever written through secure://",
            )
        if version != VERSION:
            raise UnsupportedVersionError(
                f"object format version {version} is not supported (this release reads {VERSION})",
                hint="upgrade dvc-secure",
            )
        if suite not in SUPPORTED_SUITES:
            raise UnsupportedVersionError(
                f"cipher suite {suite} is not supported", hint="upgrade dvc-secure"
            )
        if not MIN_SEGMENT_LOG2 <= seglog <= MAX_SEGMENT_LOG2:
            raise HeaderError(f"segment size 2^{seglog} is outside 2^16..2^24")
        if flags != 0:
            raise HeaderError(f"reserved header flags are set ({flags:#04x})")
        if epoch == 0:
            raise HeaderError("key epoch 0 is reserved")
        mac = bytes(data[HEADER_UNSIGNED_LEN:HEADER_LEN])
        return cls(epoch=epoch, salt=salt, mac=mac, segment_log2=seglog, version=version,
                   suite=suite, flags=flags)


@dataclass(frozen=True)
class ObjectSeal:
    """What a completed encryption or verified decryption established about an object."""

    epoch: int
    plaintext_size: int
    plaintext_sha256: bytes
    signer: bytes
    ciphertext_size: int
    ciphertext_sha256: bytes | None = None


def _check_object_id(object_id: bytes) -> None:
    if not object_id or len(object_id) > MAX_OBJECT_ID_LEN:
        raise ValueError("object id must be 1..4096 bytes")


def derive_object_keys(data_key: bytes, header_unsigned: bytes, object_id: bytes) -> tuple[bytes, bytes]:
    """(segment key, commitment key) for one object; binds epoch, suite, salt and identity."""
    if len(data_key) != 32:
        raise ValueError("data key must be 32 bytes")
    salt = header_unsigned[HEADER_UNSIGNED_LEN - SALT_LEN:HEADER_UNSIGNED_LEN]
    info = KDF_LABEL + b"\x00" + header_unsigned[6:14] + struct.pack(">H", len(object_id)) + object_id
    okm = hkdf_sha256(data_key, salt, info, 64)
    return okm[:32], okm[32:]


def signature_message(object_id: bytes, header: bytes, size: int, digest: bytes) -> bytes:
    return (SIGNATURE_LABEL + b"\x00" + struct.pack(">H", len(object_id)) + object_id
            + header + struct.pack(">Q", size) + digest)


def read_header(source: BinaryIO) -> ObjectHeader:
    """Read and structurally check a header (no key needed: tells which epoch to use)."""
    return ObjectHeader.parse(_read_exactly(source, HEADER_LEN))


def _read_exactly(source: BinaryIO, n: int) -> bytes:
    parts = []
    remaining = n
    while remaining:
        chunk = source.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


class EncryptingReader:
    """A read-only file object yielding the ciphertext of ``source``, one pass, bounded memory.

    Payload chunks are encrypted straight from the buffers ``source.read`` returns; one
    chunk of look-ahead tells whether a segment is the last. After EOF, ``seal`` describes
    the object (plaintext digest, and the ciphertext digest when ``digest_ciphertext``).
    """

    def __init__(
        self,
        source: BinaryIO,
        *,
        data_key: bytes,
        epoch: int,
        object_id: bytes,
        signer: SigningKeyPair,
        segment_log2: int = DEFAULT_SEGMENT_LOG2,
        digest_ciphertext: bool = False,
        salt: bytes | None = None,
    ) -> None:
        """``salt`` exists for deterministic test vectors only; leave it None."""
        _check_object_id(object_id)
        if salt is not None and len(salt) != SALT_LEN:
            raise ValueError("salt must be 32 bytes")
        if not MIN_SEGMENT_LOG2 <= segment_log2 <= MAX_SEGMENT_LOG2:
            raise ValueError("segment_log2 out of range")
        if not 1 <= epoch < 1 << 32:
            raise ValueError("epoch out of range")
        self._source = source
        self._object_id = object_id
        self._signer = signer
        self._seg = 1 << segment_log2
        unsigned = ObjectHeader(epoch=epoch, salt=salt or random_bytes(SALT_LEN), mac=b"",
                                segment_log2=segment_log2).unsigned_bytes()
        seg_key, commit_key = derive_object_keys(data_key, unsigned, object_id)
        self._header = unsigned + hmac_sha256(commit_key, unsigned)
        self._cipher = SegmentCipher(seg_key)
        self._epoch = epoch
        self._counter = 0
        self._payload_sha = BackgroundSha256()
        self._ct_sha = BackgroundSha256() if digest_ciphertext else None
        self._payload_len = 0
        self._ct_len = 0
        self._blocks: list[bytes] = []
        self._out = memoryview(b"")
        self._pos = 0
        self._started = False
        self._finished = False
        self._pending = b""
        self.seal: ObjectSeal | None = None

    def readable(self) -> bool:
        return True

    def _read_payload(self) -> bytes:
        chunk = _read_exactly(self._source, self._seg)
        if chunk:
            self._payload_sha.update(chunk)
            self._payload_len += len(chunk)
        return chunk

    def _emit(self, block: bytes) -> None:
        self._blocks.append(block)
        self._ct_len += len(block)
        if self._ct_sha is not None:
            self._ct_sha.update(block)

    def _produce(self) -> None:
        """Queue the next ciphertext block(s); sets ``_finished`` after the final one."""
        if not self._started:
            self._started = True
            self._emit(self._header)
            self._pending = self._read_payload()
            return
        current = self._pending
        following = self._read_payload() if len(current) == self._seg else b""
        if following:
            # more payload follows, so this full segment is not the last one
            self._emit(self._cipher.seal(self._counter, False, current))
            self._counter += 1
            self._pending = following
            return
        tail = current + self._trailer()
        while len(tail) > self._seg:
            self._emit(self._cipher.seal(self._counter, False, tail[: self._seg]))
            self._counter += 1
            tail = tail[self._seg:]
        self._emit(self._cipher.seal(self._counter, True, tail))
        self._counter += 1
        self._finished = True
        self._pending = b""
        self.seal = ObjectSeal(
            epoch=self._epoch,
            plaintext_size=self._payload_len,
            plaintext_sha256=self._payload_sha.digest(),
            signer=self._signer.public,
            ciphertext_size=self._ct_len,
            ciphertext_sha256=self._ct_sha.digest() if self._ct_sha is not None else None,
        )

    def _trailer(self) -> bytes:
        digest = self._payload_sha.digest()
        msg = signature_message(self._object_id, self._header, self._payload_len, digest)
        return _TRAILER.pack(self._payload_len, digest, self._signer.public, self._signer.sign(msg))

    def read(self, n: int | None = -1) -> bytes:
        want = n if n is not None and n >= 0 else None
        parts: list[memoryview] = []
        got = 0
        while want is None or got < want:
            if self._pos >= len(self._out):
                if not self._blocks:
                    if self._finished:
                        break
                    self._produce()
                    continue
                self._out = memoryview(self._blocks.pop(0))
                self._pos = 0
            avail = len(self._out) - self._pos
            take = avail if want is None else min(want - got, avail)
            parts.append(self._out[self._pos:self._pos + take])
            self._pos += take
            got += take
        return b"".join(parts)

    def close(self) -> None:
        self._blocks.clear()
        self._pending = b""
        self._payload_sha.close()
        if self._ct_sha is not None:
            self._ct_sha.close()


class BackgroundSha256:
    """SHA-256 computed on a worker thread so hashing overlaps AES and I/O (2 cores)."""

    _SMALL = 1 << 16

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] | None = None  # made with the thread
        self._thread: threading.Thread | None = None
        self._result: bytes | None = None

    def _run(self, q: queue.Queue[bytes | None]) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            self._hash.update(item)

    def update(self, data: bytes) -> None:
        if self._thread is None:
            if len(data) < self._SMALL:
                self._hash.update(data)  # small objects: a thread costs more than it saves
                return
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(target=self._run, args=(self._queue,),
                                            name="dvc-secure-sha256", daemon=True)
            self._thread.start()
        assert self._queue is not None
        self._queue.put(data)

    def digest(self) -> bytes:
        if self._result is None:
            self.close()
            self._result = self._hash.digest()
        return self._result

    def close(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


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
) -> ObjectSeal:
    """Authenticate and decrypt one object from ``source`` into ``sink``.

    ``sink`` receives only AEAD-authenticated payload bytes, but the object as a whole is
    valid only if this returns: callers must write to a temporary place and discard it on
    any exception.
    """
    _check_object_id(object_id)
    raw_header = _read_exactly(source, HEADER_LEN)
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
    cipher = SegmentCipher(seg_key)

    payload_sha = BackgroundSha256()
    try:
        return _decrypt_segments(
            source, sink, cipher, header, raw_header, object_id, payload_sha, is_trusted_signer
        )
    finally:
        payload_sha.close()


def _decrypt_segments(
    source: BinaryIO,
    sink: _Sink,
    cipher: SegmentCipher,
    header: ObjectHeader,
    raw_header: bytes,
    object_id: bytes,
    payload_sha: BackgroundSha256,
    is_trusted_signer: TrustedSigners,
) -> ObjectSeal:
    seg_ct = header.segment_size + TAG_LEN
    name = object_id.decode(errors="replace")
    payload_len = 0
    tail = bytearray()  # plaintext withheld because it may belong to the trailer
    counter = 0
    current = _read_exactly(source, seg_ct)
    if not current:
        raise TruncationError(f"object '{name}' has a header but no segments (truncated)")
    while True:
        nxt = _read_exactly(source, seg_ct) if len(current) == seg_ct else b""
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
            tail += plain
            break
        # A non-final segment: release everything the trailer cannot reach.
        next_plain_len = len(nxt) - TAG_LEN
        hold = max(0, TRAILER_LEN - max(next_plain_len, 0))
        if not tail and not hold:  # the common case: no copy
            payload_sha.update(plain)
            sink.write(plain)
            payload_len += len(plain)
            current = nxt
            continue
        buf = tail + plain if tail else plain
        cut = len(buf) - hold
        if cut > 0:
            out = bytes(buf[:cut])
            payload_sha.update(out)
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
        payload_sha.update(final_payload)
        sink.write(final_payload)
        payload_len += len(final_payload)
    size, digest, signer, signature = _TRAILER.unpack(bytes(tail[-TRAILER_LEN:]))
    if size != payload_len or not constant_time_equal(digest, payload_sha.digest()):
        raise SignatureError(
            f"object '{name}': decrypted content does not match the digest its writer signed"
        )
    if not ed25519_verify(signer, signature, signature_message(object_id, raw_header, size, digest)):
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
        plaintext_sha256=payload_sha.digest(),
        signer=signer,
        ciphertext_size=HEADER_LEN + _ciphertext_len(payload_len, header.segment_size),
    )


def _ciphertext_len(payload_len: int, seg: int) -> int:
    total = payload_len + TRAILER_LEN
    segments = (total + seg - 1) // seg
    return total + segments * TAG_LEN


def ciphertext_size(payload_len: int, segment_log2: int = DEFAULT_SEGMENT_LOG2) -> int:
    """Exact object size for a payload of ``payload_len`` bytes."""
    return HEADER_LEN + _ciphertext_len(payload_len, 1 << segment_log2)


def plaintext_size(object_size: int, segment_log2: int = DEFAULT_SEGMENT_LOG2) -> int | None:
    """Payload size for an object of ``object_size`` bytes, or None if no payload fits."""
    body = object_size - HEADER_LEN
    seg_ct = (1 << segment_log2) + TAG_LEN
    if body < TRAILER_LEN + TAG_LEN:
        return None
    full, rest = divmod(body, seg_ct)
    if rest and rest <= TAG_LEN:
        return None
    plain = full * (1 << segment_log2) + (rest - TAG_LEN if rest else 0)
    return plain - TRAILER_LEN if plain >= TRAILER_LEN else None


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
