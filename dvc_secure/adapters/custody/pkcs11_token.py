"""Identities whose private keys live on a PKCS#11 token (smartcard, YubiKey, HSM, SoftHSM2)
and never leave it: the X25519 key opens keyring stanzas by ECDH on the token, the Ed25519
key signs on the token (docs/custody.md, docs/spec/identity.md §9).

The identity file holds no secret, only where the keys are (mode 0600 like every identity)::

    # dvc-secure identity on a PKCS#11 token (no secret in this file)
    # recipient: age1…
    # signing-key: dvcsign1…
    DVC-SECURE-PKCS11 v1 module=<percent-encoded path> token=<percent-encoded label> id=<hex>

The PIN comes from ``DVC_SECURE_PKCS11_PIN_FILE`` (a 0600 file), ``DVC_SECURE_PKCS11_PIN``
(a CI secret) or a terminal prompt; never from the command line. python-pkcs11 (the
``pkcs11`` extra) is imported only here, only for such identities.
"""

from __future__ import annotations

import getpass
import os
import re
import stat
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from dvc_secure.core.format.primitives import SigningKeyPair, X25519KeyPair, random_bytes
from dvc_secure.core.keys.identity import Identity
from dvc_secure.errors import IdentityError, TokenMechanismError

EXTRA = "pkcs11"
TOKEN_TAG = "DVC-SECURE-PKCS11"
ENV_PIN = "DVC_SECURE_PKCS11_PIN"
ENV_PIN_FILE = "DVC_SECURE_PKCS11_PIN_FILE"
X25519_LABEL = "dvc-secure-x25519"
ED25519_LABEL = "dvc-secure-ed25519"
OID_ED25519 = "1.3.101.112"
OID_X25519 = "1.3.101.110"
_LINE = re.compile(rf"{TOKEN_TAG} v1 module=(?P<module>\S+) token=(?P<token>\S+) id=(?P<id>[0-9a-f]{{2,64}})")

# what dvc-secure asks of a token, and why (named in the error when one is missing)
NEEDED = {
    "EC_EDWARDS_KEY_PAIR_GEN": "CKM_EC_EDWARDS_KEY_PAIR_GEN (generating the Ed25519 and X25519 keys)",
    "EDDSA": "CKM_EDDSA (Ed25519 signatures on sidecars, objects, keyrings, audit events)",
    "ECDH1_DERIVE": "CKM_ECDH1_DERIVE on a Curve25519 key (X25519: opening keyring stanzas)",
}


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise IdentityError("this identity lives on a PKCS#11 token, and python-pkcs11 is not "
                            "installed", hint=f"pip install 'dvc-secure[{EXTRA}]'") from None
    return pkcs11


@dataclass(frozen=True)
class TokenRef:
    module: str
    token: str
    key_id: bytes

    def to_line(self) -> str:
        return (f"{TOKEN_TAG} v1 module={quote(self.module, safe='/')} "
                f"token={quote(self.token, safe='')} id={self.key_id.hex()}")

    def describe(self) -> str:
        return f"PKCS#11 token '{self.token}' ({self.module}, key id {self.key_id.hex()})"

    @classmethod
    def from_text(cls, text: str, source: str) -> TokenRef:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        match = _LINE.fullmatch(lines[0]) if len(lines) == 1 else None
        if match is None or len(match["id"]) % 2:
            raise IdentityError(f"{source}: not a valid '{TOKEN_TAG} v1 module=… token=… id=…' "
                                "identity line", hint="write it again with 'dvc-secure keygen "
                                "--pkcs11 <module> --token <label>'")
        return cls(unquote(match["module"]), unquote(match["token"]), bytes.fromhex(match["id"]))


# --- the PIN ---------------------------------------------------------------------------


def read_pin(env: Mapping[str, str], what: str, prompt: Callable[[str], str] | None = None) -> str:
    """DVC_SECURE_PKCS11_PIN_FILE (0600), DVC_SECURE_PKCS11_PIN, else a terminal prompt."""
    if env.get(ENV_PIN_FILE):
        path = Path(env[ENV_PIN_FILE])
        try:
            if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
                raise IdentityError(f"PIN file {path} may be read by others",
                                    hint=f"chmod 600 {path}")
            pin = path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise IdentityError(f"cannot read the PIN file {path} (${ENV_PIN_FILE}): "
                                f"{exc.__class__.__name__}") from None
        if pin:
            return pin
        raise IdentityError(f"PIN file {path} is empty")
    if env.get(ENV_PIN):
        return env[ENV_PIN]
    interactive = sys.stdin is not None and sys.stdin.isatty()
    ask = prompt or (getpass.getpass if interactive else None)
    if ask is None:
        raise IdentityError(f"{what} needs its user PIN and there is no terminal to ask for it",
                            hint=f"set {ENV_PIN_FILE} to a 0600 file holding it, or {ENV_PIN} "
                            "(a CI secret); it is never taken from the command line")
    pin = ask(f"user PIN of {what}: ")
    if not pin:
        raise IdentityError(f"no PIN given for {what}")
    return pin


# --- sessions --------------------------------------------------------------------------

_libs: dict[str, Any] = {}
_sessions: dict[tuple[str, str], Any] = {}
_lock = threading.RLock()


def _session(ref: TokenRef, env: Mapping[str, str], prompt: Callable[[str], str] | None) -> Any:
    """A logged-in session, opened once per process and token."""
    pkcs11 = _pkcs11()
    with _lock:
        slot = (ref.module, ref.token)
        if slot in _sessions:
            return _sessions[slot]
        try:
            if ref.module not in _libs:
                _libs[ref.module] = pkcs11.lib(ref.module)
            token = _libs[ref.module].get_token(token_label=ref.token)
        except (OSError, RuntimeError, pkcs11.exceptions.PKCS11Error) as exc:
            raise IdentityError(f"cannot reach {ref.describe()}: {type(exc).__name__}",
                                hint="plug the token in, and check the module path and label "
                                "('softhsm2-util --show-slots', 'pkcs11-tool -L')") from None
        check_mechanisms(token.slot, ref.token)
        pin = read_pin(env, f"PKCS#11 token '{ref.token}'", prompt)
        try:
            session = token.open(user_pin=pin, rw=True)
        except pkcs11.exceptions.PinIncorrect:
            raise IdentityError(f"the PIN for PKCS#11 token '{ref.token}' is wrong",
                                hint="tokens lock after a few wrong PINs; check "
                                f"{ENV_PIN_FILE} / {ENV_PIN}") from None
        except pkcs11.exceptions.PKCS11Error as exc:
            raise IdentityError(f"cannot log in to PKCS#11 token '{ref.token}': "
                                f"{type(exc).__name__}") from None
        _sessions[slot] = session
        return session


def check_mechanisms(slot: Any, label: str) -> None:
    """Name every mechanism the token lacks (TokenMechanismError)."""
    have = {getattr(m, "name", str(m)) for m in slot.get_mechanisms()}
    missing = [why for name, why in NEEDED.items() if name not in have]
    if missing:
        raise TokenMechanismError(
            f"PKCS#11 token '{label}' lacks {'; '.join(missing)}",
            hint="use a token that supports Ed25519 and X25519 (PKCS#11 3.0 EdDSA and "
            "Curve25519 ECDH), or keep this identity in a file (docs/custody.md)")


@dataclass(frozen=True)
class TokenX25519(X25519KeyPair):
    """An X25519 key on a token: ``exchange`` runs CKM_ECDH1_DERIVE there; no private bytes."""

    handle: Any = field(default=None, compare=False, repr=False)

    def exchange(self, peer_public: bytes) -> bytes:
        pkcs11 = _pkcs11()
        try:
            with _lock:
                shared = self.handle.derive_key(
                    pkcs11.KeyType.GENERIC_SECRET, 256,
                    mechanism=pkcs11.Mechanism.ECDH1_DERIVE,
                    mechanism_param=(pkcs11.KDF.NULL, None, peer_public),
                    template={pkcs11.Attribute.SENSITIVE: False,
                              pkcs11.Attribute.EXTRACTABLE: True,
                              pkcs11.Attribute.TOKEN: False})
                value = bytes(shared[pkcs11.Attribute.VALUE])
                shared.destroy()
        except pkcs11.exceptions.MechanismInvalid:
            raise TokenMechanismError("the token cannot do X25519 (CKM_ECDH1_DERIVE on a "
                                      "Curve25519 key)") from None
        except pkcs11.exceptions.PKCS11Error as exc:
            raise ValueError(f"token ECDH failed: {type(exc).__name__}") from None
        return value

    def __repr__(self) -> str:
        return f"TokenX25519(public={self.public.hex()})"


@dataclass(frozen=True)
class TokenSigner(SigningKeyPair):
    """An Ed25519 key on a token: ``sign`` runs CKM_EDDSA there; no private bytes."""

    handle: Any = field(default=None, compare=False, repr=False)

    def sign(self, message: bytes) -> bytes:
        pkcs11 = _pkcs11()
        try:
            with _lock:
                return bytes(self.handle.sign(message, mechanism=pkcs11.Mechanism.EDDSA))
        except pkcs11.exceptions.MechanismInvalid:
            raise TokenMechanismError("the token cannot sign with Ed25519 (CKM_EDDSA)") from None

    def __repr__(self) -> str:
        return f"TokenSigner(public={self.public.hex()})"


def _raw_point(value: bytes) -> bytes:
    """CKA_EC_POINT of a Curve25519/Ed25519 key: DER OCTET STRING (04 20 …) or raw 32 bytes."""
    value = bytes(value)
    if len(value) == 34 and value[:2] == b"\x04\x20":
        return value[2:]
    if len(value) == 32:
        return value
    raise IdentityError("the token returned a public key of unexpected form")


def _pair(session: Any, label: str, key_id: bytes) -> tuple[Any, bytes]:
    pkcs11 = _pkcs11()
    try:
        priv = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=label, id=key_id)
        pub = session.get_key(object_class=pkcs11.ObjectClass.PUBLIC_KEY, label=label, id=key_id)
    except (pkcs11.exceptions.NoSuchKey, pkcs11.exceptions.MultipleObjectsReturned):
        raise IdentityError(f"the token holds no single '{label}' key with id {key_id.hex()}",
                            hint="was the token reset? create the identity again with "
                            "'dvc-secure keygen --pkcs11'") from None
    return priv, _raw_point(pub[pkcs11.Attribute.EC_POINT])


def load_token_identity(text: str, source: str, env: Mapping[str, str],
                        prompt: Callable[[str], str] | None = None) -> Identity:
    ref = TokenRef.from_text(text, source)
    session = _session(ref, env, prompt)
    with _lock:
        x_priv, x_pub = _pair(session, X25519_LABEL, ref.key_id)
        s_priv, s_pub = _pair(session, ED25519_LABEL, ref.key_id)
    return Identity(TokenX25519(private=b"", public=x_pub, handle=x_priv),
                    TokenSigner(private=b"", public=s_pub, handle=s_priv))


def generate_token_identity(module: str, token: str, env: Mapping[str, str],
                            prompt: Callable[[str], str] | None = None) -> tuple[Identity, str]:
    """Generate both key pairs on the token (sensitive, never extractable); returns the
    identity and the text of its identity file (no secret)."""
    pkcs11 = _pkcs11()
    from pkcs11.util.ec import encode_named_curve_parameters

    ref = TokenRef(os.path.abspath(module), token, random_bytes(8))
    session = _session(ref, env, prompt)
    A = pkcs11.Attribute
    private = {A.TOKEN: True, A.PRIVATE: True, A.SENSITIVE: True, A.EXTRACTABLE: False}
    with _lock:
        for label, oid, use in ((ED25519_LABEL, OID_ED25519, {A.SIGN: True}),
                                (X25519_LABEL, OID_X25519, {A.DERIVE: True})):
            try:
                session.generate_keypair(
                    pkcs11.KeyType.EC_EDWARDS, mechanism=pkcs11.Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                    public_template={A.EC_PARAMS: encode_named_curve_parameters(oid),
                                     A.TOKEN: True, A.LABEL: label, A.ID: ref.key_id},
                    private_template={**private, **use, A.LABEL: label, A.ID: ref.key_id},
                    store=True)
            except (pkcs11.exceptions.MechanismInvalid, pkcs11.exceptions.DomainParamsInvalid,
                    pkcs11.exceptions.AttributeValueInvalid) as exc:
                what = "Ed25519" if oid == OID_ED25519 else "X25519 (Curve25519)"
                raise TokenMechanismError(f"PKCS#11 token '{token}' cannot generate {what} keys "
                                          f"({type(exc).__name__})") from None
    identity = load_token_identity(ref.to_line(), ref.describe(), env, prompt)
    text = "\n".join([
        "# dvc-secure identity on a PKCS#11 token (no secret in this file)",
        f"# recipient: {identity.recipient}",
        f"# signing-key: {identity.signing_key}",
        ref.to_line()]) + "\n"
    return identity, text
