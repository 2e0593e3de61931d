"""Object format v1 and v2 (docs/spec/object-format.md): round trips and the attacks they stop."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dvc_secure.core.format import object_format as of
from dvc_secure.core.format import object_reader as rd
from dvc_secure.core.format.primitives import SegmentCipher, SigningKeyPair
from dvc_secure.core.keys.keyring import KeySet
from dvc_secure.errors import (
    AuthenticationError,
    HeaderError,
    NoKeyForEpochError,
    ObjectFormatError,
    SignatureError,
    TrailingDataError,
    TruncationError,
    UnsupportedVersionError,
    UntrustedSignerError,
    WrongKeyError,
)

SEG_LOG2 = 16
SEG = 1 << SEG_LOG2
KEY = hashlib.sha256(b"unit test data key 1").digest()
KEY2 = hashlib.sha256(b"unit test data key 2").digest()
WRITER = SigningKeyPair.from_private(hashlib.sha256(b"unit test writer").digest())
OUTSIDER = SigningKeyPair.from_private(hashlib.sha256(b"unit test outsider").digest())
OID = b"files/md5/d4/1d8cd98f00b204e9800998ecf8427e"
FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def payload_of(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def encrypt(
    payload: bytes,
    *,
    oid: bytes = OID,
    key: bytes = KEY,
    epoch: int = 1,
    segment_log2: int = SEG_LOG2,
    signer: SigningKeyPair = WRITER,
    salt: bytes | None = None,
    version: int = of.VERSION,
) -> bytes:
    reader = of.EncryptingReader(
        io.BytesIO(payload),
        data_key=key,
        epoch=epoch,
        object_id=oid,
        signer=signer,
        segment_log2=segment_log2,
        salt=salt,
        version=version,
    )
    try:
        return reader.read()
    finally:
        reader.close()


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def decrypt(
    ciphertext: bytes,
    *,
    oid: bytes = OID,
    keys: dict[int, bytes] | None = None,
    trusted: frozenset[bytes] = frozenset({WRITER.public}),
    sink: Sink | None = None,
) -> tuple[bytes, of.ObjectSeal]:
    keyset = KeySet(
        data_keys={1: KEY} if keys is None else keys, name_secret=bytes(32), current_epoch=1
    )
    out = Sink() if sink is None else sink
    seal = rd.decrypt_object(
        io.BytesIO(ciphertext),
        out,
        object_id=oid,
        key_for_epoch=keyset.key_for_epoch,
        is_trusted_signer=lambda k, _epoch: k in trusted,
    )
    return bytes(out.data), seal


def segments(ciphertext: bytes, segment_log2: int = SEG_LOG2) -> list[bytes]:
    body = ciphertext[of.HEADER_LEN :]
    n = (1 << segment_log2) + of.TAG_LEN
    return [body[i : i + n] for i in range(0, len(body), n)]


# sizes around every place where the segment layout changes (payload + trailer = k * 2^16)
near_boundaries = st.one_of(
    st.integers(0, 400),
    *[st.integers(k * SEG - of.TRAILER_LEN - 40, k * SEG - of.TRAILER_LEN + 40) for k in (1, 2, 3)],
    st.integers(SEG - 40, SEG + 40),
    st.integers(0, 3 * SEG),
)


# --- round trips ------------------------------------------------------------------------------


@FAST
@given(size=near_boundaries, seed=st.integers(0, 2**32), segment_log2=st.sampled_from([16, 17]))
def test_round_trip(size: int, seed: int, segment_log2: int) -> None:
    payload = payload_of(size, seed)
    ct = encrypt(payload, segment_log2=segment_log2)
    assert len(ct) == of.ciphertext_size(size, segment_log2)
    assert of.plaintext_size(len(ct), segment_log2) == size
    plain, seal = decrypt(ct)
    assert plain == payload
    assert seal.plaintext_size == size
    assert seal.plaintext_sha256 == hashlib.sha256(payload).digest()
    assert seal.signer == WRITER.public
    assert seal.epoch == 1
    assert seal.ciphertext_size == len(ct)


@FAST
@given(
    size=near_boundaries,
    reads=st.lists(st.integers(0, 70000), min_size=1, max_size=8),
    source_chunk=st.integers(1, 70000),
    read1=st.lists(st.booleans(), min_size=1, max_size=8),
)
def test_encrypting_reader_output_independent_of_read_sizes(
    size: int, reads: list[int], source_chunk: int, read1: list[bool]
) -> None:
    payload = payload_of(size)
    salt = bytes(range(32))
    whole = encrypt(payload, salt=salt)

    class Trickle(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:  # short reads, like a socket
            return super().read(min(source_chunk, n) if n is not None and n >= 0 else -1)

    reader = of.EncryptingReader(
        Trickle(payload),
        data_key=KEY,
        epoch=1,
        object_id=OID,
        signer=WRITER,
        segment_log2=SEG_LOG2,
        salt=salt,
    )
    ops = zip(itertools.islice(itertools.cycle(reads), 64), itertools.cycle(read1), strict=False)
    parts = [(reader.read1 if one else reader.read)(n) for n, one in ops]
    parts.append(reader.read())
    reader.close()
    assert b"".join(parts) == whole
    assert reader.seal is not None
    assert reader.seal.ciphertext_sha256 == hashlib.sha256(whole).digest()
    assert reader.seal.ciphertext_size == len(whole)


def test_read1_hands_out_whole_blocks_without_copying() -> None:
    reader = of.EncryptingReader(io.BytesIO(payload_of(3 * SEG)), data_key=KEY, epoch=1,
                                 object_id=OID, signer=WRITER, segment_log2=SEG_LOG2)
    sizes = []
    while block := reader.read1(1 << 24):
        sizes.append(len(block))
    reader.close()
    assert sizes == [of.HEADER_LEN, SEG + 16, SEG + 16, SEG + 16, of.TRAILER_LEN + 16]
    assert reader.read1(-1) == b""


@FAST
@given(size=near_boundaries, chunk=st.integers(1, 70000))
def test_decrypt_from_short_reads(size: int, chunk: int) -> None:
    payload = payload_of(size)
    ct = encrypt(payload)

    class Trickle(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            return super().read(min(chunk, n) if n is not None and n >= 0 else -1)

    sink = Sink()
    rd.decrypt_object(
        Trickle(ct),
        sink,
        object_id=OID,
        key_for_epoch={1: KEY}.__getitem__,
        is_trusted_signer=lambda k, _epoch: k == WRITER.public,
    )
    assert bytes(sink.data) == payload


@pytest.mark.parametrize("version", [1, 2])
def test_layout_of_a_two_segment_object(version: int) -> None:
    payload = payload_of(SEG)  # a full payload segment, then the trailer alone
    ct = encrypt(payload, salt=bytes(32), version=version)
    header = of.ObjectHeader.parse(ct)
    assert ct[:6] == b"DVCSEC" and ct[6:10] == bytes([version, 1, 16, 0])
    assert header.epoch == 1 and header.salt == bytes(32)
    segs = segments(ct)
    assert [len(s) for s in segs] == [SEG + 16, of.TRAILER_LEN + 16]
    seg_key, _ = of.derive_object_keys(KEY, ct[: of.HEADER_UNSIGNED_LEN], OID)
    cipher = SegmentCipher(seg_key)
    assert cipher.open(0, False, segs[0]) == payload
    size, digest, signer, _sig = struct.unpack(">Q32s32s64s", cipher.open(1, True, segs[1]))
    # v1 signs SHA-256(payload); v2 the content digest: header, the payload-only segment's
    # ciphertext, then the payload after it (none here)
    expected = (hashlib.sha256(payload) if version == 1
                else hashlib.sha256(ct[: of.HEADER_LEN] + segs[0])).digest()
    assert (size, digest, signer) == (SEG, expected, WRITER.public)


@pytest.mark.parametrize("size", [0, 1, SEG - of.TRAILER_LEN, SEG - of.TRAILER_LEN + 1,
                                  SEG - 1, SEG, SEG + 1, 2 * SEG + 100])
def test_v2_content_digest_is_the_spec_definition(size: int) -> None:
    """Header || ciphertext of the floor(len/seg) payload-only segments || the rest."""
    payload = payload_of(size, seed=size)
    ct = encrypt(payload)
    segs = segments(ct)
    m = size // SEG
    expected = hashlib.sha256(ct[: of.HEADER_LEN] + b"".join(segs[:m]) + payload[m * SEG :])
    seg_key, _ = of.derive_object_keys(KEY, ct[: of.HEADER_UNSIGNED_LEN], OID)
    cipher = SegmentCipher(seg_key)
    stream = b"".join(cipher.open(i, i == len(segs) - 1, s) for i, s in enumerate(segs))
    assert stream[-of.TRAILER_LEN :][8:40] == expected.digest()
    _, seal = decrypt(ct)
    assert seal.ciphertext_sha256 == hashlib.sha256(ct).digest()
    reader = of.EncryptingReader(io.BytesIO(payload), data_key=KEY, epoch=1, object_id=OID,
                                 signer=WRITER, segment_log2=SEG_LOG2)
    assert hashlib.sha256(reader.read()).digest() == reader.seal.ciphertext_sha256  # type: ignore[union-attr]
    reader.close()


@pytest.mark.parametrize("size", [0, 1, SEG - of.TRAILER_LEN + 1, SEG, 2 * SEG + 100])
def test_v1_objects_still_read(size: int) -> None:
    payload = payload_of(size, seed=size)
    ct = encrypt(payload, version=1)
    assert ct[6] == 1
    data, seal = decrypt(ct)
    assert data == payload and seal.version == 1
    assert seal.plaintext_sha256 == hashlib.sha256(payload).digest()


def test_v2_pull_skips_the_payload_digest_unless_asked() -> None:
    payload = payload_of(SEG + 5)
    ct = encrypt(payload)
    keyset = KeySet(data_keys={1: KEY}, name_secret=bytes(32), current_epoch=1)
    lean = rd.decrypt_object(io.BytesIO(ct), Sink(), object_id=OID,
                             key_for_epoch=keyset.key_for_epoch,
                             is_trusted_signer=lambda k, _e: k == WRITER.public,
                             plaintext_sha256=False)
    assert lean.plaintext_sha256 is None and lean.version == 2
    with pytest.raises(ValueError, match="not computed"):
        lean.payload_sha256()
    assert decrypt(ct)[1].payload_sha256() == hashlib.sha256(payload).digest()


def test_nonce_is_counter_then_final_flag() -> None:
    assert SegmentCipher.nonce(0, False) == bytes(12)
    assert SegmentCipher.nonce(0x0102, True) == bytes(9) + b"\x01\x02\x01"
    with pytest.raises(OverflowError):
        SegmentCipher.nonce(1 << 88, False)


def test_salt_makes_every_encryption_distinct() -> None:
    assert encrypt(b"same") != encrypt(b"same")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"segment_log2": 15},
        {"segment_log2": 25},
        {"epoch": 0},
        {"epoch": 1 << 32},
        {"salt": bytes(31)},
        {"object_id": b""},
        {"object_id": b"x" * 4097},
    ],
)
def test_writer_refuses_out_of_range_parameters(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"data_key": KEY, "epoch": 1, "object_id": OID, "signer": WRITER}
    args.update(kwargs)
    with pytest.raises(ValueError):
        of.EncryptingReader(io.BytesIO(b""), **args)  # type: ignore[arg-type]


# --- sizes -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 1 << 40), segment_log2=st.integers(16, 24))
def test_plaintext_size_inverts_ciphertext_size(n: int, segment_log2: int) -> None:
    size = of.ciphertext_size(n, segment_log2)
    assert of.plaintext_size(size, segment_log2) == n
    seg = 1 << segment_log2
    total = n + of.TRAILER_LEN
    assert size == of.HEADER_LEN + total + -(-total // seg) * of.TAG_LEN


@settings(max_examples=300, deadline=None)
@given(size=st.integers(0, 1 << 30), segment_log2=st.integers(16, 24))
def test_plaintext_size_only_for_possible_sizes(size: int, segment_log2: int) -> None:
    n = of.plaintext_size(size, segment_log2)
    if n is not None:
        assert of.ciphertext_size(n, segment_log2) == size


def test_smallest_object() -> None:
    assert of.ciphertext_size(0) == 78 + 136 + 16 == 230
    assert of.plaintext_size(229) is None
    assert of.plaintext_size(230) == 0


# --- attacks: every modification is rejected ----------------------------------------------------


SMALL = encrypt(b"small object payload", salt=bytes(range(32)))


def test_every_single_byte_flip_rejected() -> None:
    for i in range(len(SMALL)):
        tampered = bytearray(SMALL)
        tampered[i] ^= 0xFF
        sink = Sink()
        with pytest.raises((ObjectFormatError, NoKeyForEpochError)) as info:
            decrypt(bytes(tampered), sink=sink)
        assert not sink.data
        if i < 10:  # magic, version, suite, segment_log2, flags: structural checks
            assert isinstance(info.value, HeaderError), i
        elif i < 14:  # a changed epoch names a key the reader does not hold
            assert type(info.value) is NoKeyForEpochError, i
        elif i < of.HEADER_LEN:  # salt and MAC
            assert type(info.value) is WrongKeyError, i
        else:
            assert type(info.value) is AuthenticationError, i


@FAST
@given(position=st.integers(0, len(SMALL) - 1), mask=st.integers(1, 255))
def test_any_bit_pattern_flip_rejected(position: int, mask: int) -> None:
    tampered = bytearray(SMALL)
    tampered[position] ^= mask
    with pytest.raises((ObjectFormatError, NoKeyForEpochError)):
        decrypt(bytes(tampered))
    claimed_epoch = struct.unpack(">I", tampered[10:14])[0]
    with pytest.raises(ObjectFormatError):  # a reader holding a key for the claimed epoch too
        decrypt(bytes(tampered), keys={claimed_epoch: KEY2, 1: KEY})


def test_truncation_at_every_position_rejected() -> None:
    for cut in range(len(SMALL)):
        with pytest.raises(ObjectFormatError) as info:
            decrypt(SMALL[:cut])
        if cut <= of.HEADER_LEN:
            assert type(info.value) is TruncationError, cut
        else:  # inside the only (final) segment
            assert type(info.value) is AuthenticationError, cut


MULTI_PAYLOAD = payload_of(3 * SEG + 1000, seed=7)
MULTI = encrypt(MULTI_PAYLOAD)  # segments: 3 full, 1 short final


def test_truncation_at_segment_boundary_rejected() -> None:
    segs = segments(MULTI)
    assert len(segs) == 4
    for keep in range(1, len(segs)):
        cut = MULTI[: of.HEADER_LEN] + b"".join(segs[:keep])
        sink = Sink()
        with pytest.raises(TruncationError):
            decrypt(cut, sink=sink)
        # what reached the sink is authenticated, but the object as a whole is not valid:
        # callers must discard it (the spec's rule for callers)
        assert bytes(sink.data) == MULTI_PAYLOAD[: len(sink.data)]


@FAST
@given(cut=st.integers(of.HEADER_LEN + 1, len(MULTI) - 1))
def test_truncation_anywhere_in_a_multi_segment_object_rejected(cut: int) -> None:
    with pytest.raises((TruncationError, AuthenticationError)):
        decrypt(MULTI[:cut])


FULL_FINAL = encrypt(payload_of(SEG - of.TRAILER_LEN))  # one final segment of exactly 2^16


@FAST
@given(extra=st.binary(min_size=1, max_size=SEG + 40))
def test_extension_rejected(extra: bytes) -> None:
    with pytest.raises(TrailingDataError):
        decrypt(FULL_FINAL + extra)
    with pytest.raises((TrailingDataError, AuthenticationError)):
        decrypt(MULTI + extra)
    with pytest.raises(AuthenticationError):  # short final segment: cannot tell where it ends
        decrypt(SMALL + extra)


def test_extension_by_a_valid_segment_rejected() -> None:
    segs = segments(MULTI)
    with pytest.raises(ObjectFormatError):
        decrypt(MULTI + segs[-1])
    with pytest.raises(TrailingDataError):
        decrypt(FULL_FINAL + segments(FULL_FINAL)[-1])


@FAST
@given(order=st.permutations(range(4)))
def test_reordered_segments_rejected(order: list[int]) -> None:
    assume(order != [0, 1, 2, 3])
    segs = segments(MULTI)
    with pytest.raises(AuthenticationError):
        decrypt(MULTI[: of.HEADER_LEN] + b"".join(segs[i] for i in order))


@pytest.mark.parametrize("dropped", range(3))
def test_dropped_segment_rejected(dropped: int) -> None:
    segs = segments(MULTI)
    del segs[dropped]
    with pytest.raises(AuthenticationError):
        decrypt(MULTI[: of.HEADER_LEN] + b"".join(segs))


def test_segment_replayed_from_another_object_rejected() -> None:
    other = encrypt(MULTI_PAYLOAD)  # same content, same key, same id: fresh salt
    mixed = MULTI[: of.HEADER_LEN] + segments(other)[0] + b"".join(segments(MULTI)[1:])
    with pytest.raises(AuthenticationError):
        decrypt(mixed)


@FAST
@given(other_id=st.binary(min_size=1, max_size=200))
def test_swapped_object_rejected(other_id: bytes) -> None:
    """An object moved or copied to another object id fails before any segment is read."""
    assume(other_id != OID)
    sink = Sink()
    with pytest.raises(WrongKeyError):
        decrypt(SMALL, oid=other_id, sink=sink)
    assert not sink.data


@FAST
@given(key=st.binary(min_size=32, max_size=32))
def test_wrong_key_rejected_by_key_commitment(key: bytes) -> None:
    assume(key != KEY)
    with pytest.raises(WrongKeyError):
        decrypt(SMALL, keys={1: key})


def test_wrong_epoch_key_rejected() -> None:
    ct = encrypt(b"epoch two", key=KEY2, epoch=2)
    assert decrypt(ct, keys={1: KEY, 2: KEY2})[0] == b"epoch two"
    with pytest.raises(WrongKeyError):
        decrypt(ct, keys={1: KEY2, 2: KEY})  # keys of the wrong epochs
    with pytest.raises(NoKeyForEpochError, match="epoch 2"):
        decrypt(ct, keys={1: KEY})
    relabelled = ct[:10] + struct.pack(">I", 1) + ct[14:]  # claim epoch 1
    with pytest.raises(WrongKeyError):
        decrypt(relabelled, keys={1: KEY, 2: KEY2})


def test_untrusted_signer_rejected() -> None:
    """A data-key holder (a reader, or someone who stole the key) cannot pass as a writer."""
    forged = encrypt(b"forged by a reader", signer=OUTSIDER)
    with pytest.raises(UntrustedSignerError):
        decrypt(forged)
    assert decrypt(forged, trusted=frozenset({OUTSIDER.public}))[0] == b"forged by a reader"


def _reencrypt(ciphertext: bytes, oid: bytes, stream_edit: object) -> bytes:
    """What a data-key holder can do: decrypt the STREAM, edit it, encrypt it again."""
    header = ciphertext[: of.HEADER_LEN]
    seg_key, _ = of.derive_object_keys(KEY, header[: of.HEADER_UNSIGNED_LEN], oid)
    cipher = SegmentCipher(seg_key)
    segs = segments(ciphertext)
    stream = b"".join(cipher.open(i, i == len(segs) - 1, s) for i, s in enumerate(segs))
    stream = stream_edit(stream)  # type: ignore[operator]
    chunks = [stream[i : i + SEG] for i in range(0, len(stream), SEG)]
    return header + b"".join(cipher.seal(i, i == len(chunks) - 1, c) for i, c in enumerate(chunks))


def test_reader_replacing_content_rejected() -> None:
    """Keeps the writer's signed trailer but changes the payload."""
    forged = _reencrypt(SMALL, OID, lambda s: b"X" + s[1:])
    with pytest.raises(SignatureError, match="digest"):
        decrypt(forged)


def test_reader_moving_signed_object_to_another_id_rejected() -> None:
    """Re-encrypts a signed object under another id (a valid header MAC for that id)."""
    other = b"files/md5/00/000000000000000000000000000000"
    moved_header = encrypt(b"", oid=other)[: of.HEADER_LEN]
    seg_key, _ = of.derive_object_keys(KEY, moved_header[: of.HEADER_UNSIGNED_LEN], other)
    original_key, _ = of.derive_object_keys(KEY, SMALL[: of.HEADER_UNSIGNED_LEN], OID)
    stream = SegmentCipher(original_key).open(0, True, segments(SMALL)[0])
    moved = moved_header + SegmentCipher(seg_key).seal(0, True, stream)
    with pytest.raises(SignatureError, match="digest"):  # v2: the header is in the digest
        decrypt(moved, oid=other)


def test_empty_final_segment_rejected() -> None:
    header = FULL_FINAL[: of.HEADER_LEN]
    seg_key, _ = of.derive_object_keys(KEY, header[: of.HEADER_UNSIGNED_LEN], OID)
    cipher = SegmentCipher(seg_key)
    stream = cipher.open(0, True, segments(FULL_FINAL)[0])
    noncanonical = header + cipher.seal(0, False, stream) + cipher.seal(1, True, b"")
    with pytest.raises(AuthenticationError, match="empty"):
        decrypt(noncanonical)


@pytest.mark.parametrize(
    ("offset", "value", "error"),
    [
        (0, ord("X"), HeaderError),
        (6, 3, UnsupportedVersionError),
        (6, 0, UnsupportedVersionError),
        (7, 0, UnsupportedVersionError),
        (8, 15, HeaderError),
        (8, 25, HeaderError),
        (9, 0x80, HeaderError),
    ],
)
def test_header_fields_checked(offset: int, value: int, error: type[Exception]) -> None:
    bad = bytearray(SMALL)
    bad[offset] = value
    with pytest.raises(error) as info:
        of.read_header(io.BytesIO(bytes(bad)))
    assert type(info.value) is error
    with pytest.raises(error):
        decrypt(bytes(bad))


def test_epoch_zero_rejected() -> None:
    with pytest.raises(HeaderError, match="epoch 0"):
        decrypt(SMALL[:10] + bytes(4) + SMALL[14:])


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), magic=st.booleans())
def test_garbage_only_raises_format_errors(data: bytes, magic: bool) -> None:
    if magic:
        data = b"DVCSEC\x01\x01\x10\x00\x00\x00\x00\x01" + data
    with pytest.raises((ObjectFormatError, NoKeyForEpochError)):
        decrypt(data)


@pytest.mark.parametrize("size", [0, 4096, SEG, 3 * SEG + 777])
def test_push_and_pull_hash_each_byte_once(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The performance guard that noise cannot hide (issue 16): format v2 hashes the stored
    bytes once on a push and once on a pull; only the payload after the last payload-only
    segment (< one segment) is hashed a second time, as plaintext, for the signed digest."""
    hashed: list[int] = []
    original = of.BackgroundSha256.update

    def counting(self: of.BackgroundSha256, data: bytes) -> None:
        hashed.append(len(data))
        original(self, data)

    monkeypatch.setattr(of.BackgroundSha256, "update", counting)
    payload = payload_of(size)
    ct = encrypt(payload)
    assert sum(hashed) == len(ct)  # push: the stored object's bytes, each once
    hashed.clear()
    keyset = KeySet(data_keys={1: KEY}, name_secret=bytes(32), current_epoch=1)
    rd.decrypt_object(io.BytesIO(ct), Sink(), object_id=OID, key_for_epoch=keyset.key_for_epoch,
                      is_trusted_signer=lambda k, _e: k == WRITER.public, plaintext_sha256=False)
    assert sum(hashed) == len(ct)  # pull: the same
    hashed.clear()
    encrypt(payload, version=1)
    assert sum(hashed) >= 2 * size  # what format v1 cost: payload and ciphertext


@pytest.mark.parametrize("inline", [0, 1 << 17, 1 << 40])
def test_background_sha256_same_digest_inline_or_on_its_thread(
    inline: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(of.BackgroundSha256, "_INLINE", inline)
    payload = payload_of(5 * SEG + 3)
    ct = encrypt(payload)
    reader = of.EncryptingReader(io.BytesIO(payload), data_key=KEY, epoch=1, object_id=OID,
                                 signer=WRITER, segment_log2=SEG_LOG2)
    out = reader.read()
    reader.close()
    assert reader.seal is not None and reader.seal.ciphertext_sha256 == hashlib.sha256(out).digest()
    data, seal = decrypt(ct)
    assert data == payload and seal.ciphertext_sha256 == hashlib.sha256(ct).digest()
