"""Hidden object names (docs/spec/hidden-names.md)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dvc_secure.core.format.names import derive_name_key, hide_name, reveal_name

KEY = derive_name_key(hashlib.sha256(b"unit test name secret").digest())
OTHER_KEY = derive_name_key(hashlib.sha256(b"another name secret").digest())
B32 = "abcdefghijklmnopqrstuvwxyz234567"
HEX = "0123456789abcdef"

names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300
)
md5_paths = st.builds(
    lambda h, d: f"files/md5/{h[:2]}/{h[2:]}" + (".dir" if d else ""),
    st.binary(min_size=16, max_size=16).map(lambda b: b.hex()),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(name=names)
def test_round_trip(name: str) -> None:
    hidden = hide_name(KEY, name)
    assert reveal_name(KEY, hidden) == name
    assert hide_name(KEY, name) == hidden  # deterministic: DVC finds the object again


@settings(max_examples=100, deadline=None)
@given(name=md5_paths)
def test_shape_of_hidden_dvc_object_names(name: str) -> None:
    hidden = hide_name(KEY, name)
    # every DVC object path pads to 96 bytes: 112 bytes of AES-SIV output, 180 characters,
    # behind a two-level hex prefix taken from the first two ciphertext bytes
    assert len(hidden) == 2 + 1 + 2 + 180 and hidden[2] == "/"
    assert set(hidden[:2] + hidden[3:5]) <= set(HEX)
    assert set(hidden[5:]) <= set(B32)
    assert name.split("/")[-1] not in hidden


def test_hidden_names_spread_over_every_hex_shard() -> None:
    """DVC lists its remote shard by shard ('00'..'ff', and 3-digit prefixes) and
    estimates its size from shard '00': hidden names must fill those shards uniformly."""
    shards = [hide_name(KEY, f"files/md5/{i:032x}")[:4] for i in range(8192)]
    first = {s[:2] for s in shards}
    assert first == {f"{i:02x}" for i in range(256)}
    per_shard = 8192 / 256
    assert 0.4 * per_shard < sum(1 for s in shards if s.startswith("00")) < 2.0 * per_shard
    assert {s[3] for s in shards} == set(HEX)  # the sub-prefix DVC uses for 3-digit listings


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_foreign_names_return_none(text: str) -> None:
    assert reveal_name(KEY, text) is None


@settings(max_examples=100, deadline=None)
@given(name=md5_paths)
def test_names_of_another_repository_return_none(name: str) -> None:
    assert reveal_name(OTHER_KEY, hide_name(KEY, name)) is None


@settings(max_examples=100, deadline=None)
@given(name=md5_paths, position=st.integers(0, 184), char=st.sampled_from(B32 + HEX))
def test_tampered_hidden_name_returns_none(name: str, position: int, char: str) -> None:
    hidden = hide_name(KEY, name)
    assume(position != 2 and hidden[position] != char)
    assert reveal_name(KEY, hidden[:position] + char + hidden[position + 1 :]) is None


@settings(max_examples=60, deadline=None)
@given(name=names, cut=st.integers(3, 40))
def test_every_object_has_exactly_one_storage_name(name: str, cut: int) -> None:
    """Aliases (other case, other '/' placement, non-canonical base32) do not reveal."""
    hidden = hide_name(KEY, name)
    token = hidden.replace("/", "")
    aliases = {
        hidden.upper(),
        token,
        token[:cut] + "/" + token[cut:],
        hidden[:cut] + "/" + hidden[cut:],
        "/" + hidden,
        hidden + "/",
    }
    index = B32.index(token[-1])
    aliases |= {hidden[:-1] + B32[index ^ bit] for bit in (1, 2, 4, 8, 16)}
    aliases.discard(hidden)
    for alias in aliases:
        assert reveal_name(KEY, alias) is None, alias


def test_padding_classes() -> None:
    """Names pad to max(96, multiple of 32) bytes; the hidden length shows only that class,
    so DVC objects and dvc-secure manifests look alike."""
    lengths = {n: len(hide_name(KEY, "x" * n)) for n in (0, 1, 47, 81, 96, 97, 128)}
    assert lengths[0] == lengths[1] == lengths[47] == lengths[81] == lengths[96] == 185
    assert lengths[97] == lengths[128] == 2 + 1 + 2 + 231  # 144 bytes -> 231 characters


def test_nul_in_name_refused() -> None:
    with pytest.raises(ValueError):
        hide_name(KEY, "files/md5/ab/\x00")


def test_name_key_is_hkdf_of_the_name_secret() -> None:
    assert len(KEY) == 64
    assert derive_name_key(b"\x01" * 32) != derive_name_key(b"\x02" * 32)


# --- scheme 2: the secure remote's name id bound into the name key (§1) --------------------

SECRET = hashlib.sha256(b"unit test name secret").digest()
VAULT_ID, BACKUP_ID = bytes(range(16)), bytes(range(16, 32))


def test_remote_name_key_is_hkdf_with_the_name_id_in_info() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from dvc_secure.core.format.names import derive_remote_name_key

    info = b"dvc-secure/v2/names\x00" + VAULT_ID
    assert derive_remote_name_key(SECRET, VAULT_ID) == \
        HKDF(hashes.SHA256(), 64, None, info).derive(SECRET)
    assert derive_remote_name_key(SECRET, VAULT_ID) != derive_remote_name_key(SECRET, BACKUP_ID)
    assert derive_remote_name_key(SECRET, VAULT_ID) != derive_name_key(SECRET)
    with pytest.raises(ValueError):
        derive_remote_name_key(SECRET, VAULT_ID[:15])


@settings(max_examples=100, deadline=None)
@given(name=md5_paths)
def test_two_remotes_never_share_a_name_and_each_reveals_only_its_own(name: str) -> None:
    from dvc_secure.core.format.names import NAMES_V1, NAMES_V2, derive_remote_name_key

    vault, backup = (derive_remote_name_key(SECRET, i) for i in (VAULT_ID, BACKUP_ID))
    on_vault, on_backup = hide_name(vault, name, NAMES_V2), hide_name(backup, name, NAMES_V2)
    old = hide_name(derive_name_key(SECRET), name, NAMES_V1)
    assert len({on_vault, on_backup, old}) == 3
    assert reveal_name(vault, on_vault, NAMES_V2) == name
    assert reveal_name(vault, on_backup, NAMES_V2) is None
    assert reveal_name(backup, on_vault, NAMES_V2) is None
    assert reveal_name(vault, old, NAMES_V2) is None  # scheme 1 is read only as scheme 1
    assert reveal_name(derive_name_key(SECRET), old, NAMES_V1) == name
    assert len(on_vault) == len(old)  # the scheme does not show in the name


def test_same_key_other_scheme_does_not_reveal() -> None:
    from dvc_secure.core.format.names import NAMES_V1, NAMES_V2

    hidden = hide_name(KEY, "files/md5/ab/" + "c" * 30, NAMES_V2)
    assert reveal_name(KEY, hidden, NAMES_V1) is None


@pytest.mark.parametrize("scheme", [0, 3, 255])
def test_unknown_scheme_refused(scheme: int) -> None:
    with pytest.raises(ValueError, match="unsupported hidden-name scheme"):
        hide_name(KEY, "files/md5/ab/cd", scheme)
    with pytest.raises(ValueError, match="unsupported hidden-name scheme"):
        reveal_name(KEY, hide_name(KEY, "files/md5/ab/cd"), scheme)
