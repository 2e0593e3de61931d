"""Where identities live: a 0600 file (plain, passphrase-protected, or a pointer into the
OS keyring), or the environment (for CI secrets). docs/spec/identity.md §4, §7, §8.

Resolution order: ``DVC_SECURE_IDENTITY`` (the identity text itself, plain or protected),
then ``DVC_SECURE_IDENTITY_FILE`` (a path), then ``$XDG_CONFIG_HOME/dvc-secure/identity.txt``.
The scrypt and ``keyring`` code is imported only when a file needs it (git hooks load
plain identities on every commit).
"""

from __future__ import annotations

import getpass
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from dvc_secure.adapters.local import env_secrets
from dvc_secure.core.keys.identity import Identity
from dvc_secure.errors import IdentityError, PassphraseError

if TYPE_CHECKING:
    from dvc_secure.core.format.passphrase import ScryptParams

ENV_IDENTITY = "DVC_SECURE_IDENTITY"
ENV_IDENTITY_FILE = "DVC_SECURE_IDENTITY_FILE"
ENV_PASSPHRASE = "DVC_SECURE_PASSPHRASE"
ENV_PASSPHRASE_FILE = "DVC_SECURE_PASSPHRASE_FILE"

# Same text as dvc_secure.core.format.passphrase.BEGIN (a unit test keeps them equal); kept
# here so that telling the kinds apart imports no crypto.
PROTECTED_BEGIN = "-----BEGIN DVC-SECURE PROTECTED IDENTITY-----"
POINTER_TAG = "DVC-SECURE-OS-KEYRING"
POINTER_VERSION = "v1"
KEYRING_SERVICE = "dvc-secure"
_POINTER_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
_POINTER_LINE = re.compile(
    rf"{POINTER_TAG} (?P<version>\S+) service=(?P<service>\S*) user=(?P<user>\S*)"
)

# an identity on a PKCS#11 token (adapters/custody/pkcs11_token.py; no secret in the text)
TOKEN_TAG = "DVC-SECURE-PKCS11"

Kind = Literal["plain", "protected", "pointer", "pkcs11"]
Prompt = Callable[[str], str]


def text_kind(text: str) -> Kind:
    """Which of the three identity texts this is, from its first meaningful line."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == PROTECTED_BEGIN:
            return "protected"
        if line.startswith(POINTER_TAG + " ") or line == POINTER_TAG:
            return "pointer"
        if line.startswith(TOKEN_TAG + " "):
            return "pkcs11"
        return "plain"
    return "plain"


@dataclass(frozen=True)
class KeyringPointer:
    """Names the OS keyring entry holding an identity; holds no secret."""

    service: str
    user: str

    def __post_init__(self) -> None:
        for what, value in (("service", self.service), ("user", self.user)):
            if not _POINTER_NAME.fullmatch(value):
                raise IdentityError(
                    f"OS keyring {what} name {value!r} is not allowed",
                    hint="use 1 to 128 characters from A-Z a-z 0-9 . _ @ + - "
                    "(choose one with --keyring-user)",
                )

    def to_text(self) -> str:
        return f"{POINTER_TAG} {POINTER_VERSION} service={self.service} user={self.user}\n"

    def describe(self) -> str:
        return f"OS keyring service={self.service} user={self.user}"

    @classmethod
    def from_text(cls, text: str, source: str) -> KeyringPointer:
        lines = [
            (n, line.strip())
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")
        ]
        if len(lines) != 1:
            raise IdentityError(f"{source}: an OS keyring pointer file holds exactly one line")
        number, line = lines[0]
        m = _POINTER_LINE.fullmatch(line)
        if m is None:
            raise IdentityError(
                f"{source}: line {number} is not '{POINTER_TAG} v1 service=NAME user=NAME'"
            )
        if m["version"] != POINTER_VERSION:
            raise IdentityError(
                f"{source}: unsupported OS keyring pointer version",
                hint="this dvc-secure reads v1; upgrade dvc-secure",
            )
        try:
            return cls(m["service"], m["user"])
        except IdentityError as exc:
            raise IdentityError(f"{source}: {exc.message}") from None


def default_identity_path(env: Mapping[str, str] | None = None) -> Path:
    env = env_secrets.environ() if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "dvc-secure" / "identity.txt"


def default_output_path(env: Mapping[str, str] | None = None) -> Path:
    """Where ``keygen`` writes: where ``load_identity`` will look for a file."""
    env = env_secrets.environ() if env is None else env
    if env.get(ENV_IDENTITY_FILE):
        return Path(env[ENV_IDENTITY_FILE])
    return default_identity_path(env)


def _identity_path(env: Mapping[str, str]) -> Path:
    return Path(env[ENV_IDENTITY_FILE]) if env.get(ENV_IDENTITY_FILE) else default_identity_path(env)


def identity_source(env: Mapping[str, str] | None = None) -> str:
    """Where the identity comes from and how it is stored (for whoami and error messages)."""
    env = env_secrets.environ() if env is None else env
    text = env.get(ENV_IDENTITY)
    if text:
        if text_kind(text) == "protected":
            return f"${ENV_IDENTITY} (passphrase-protected)"
        return f"${ENV_IDENTITY}"
    path = _identity_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return f"file {path}"
    kind = text_kind(text)
    if kind == "protected":
        return f"passphrase-protected file {path}"
    if kind == "pointer":
        try:
            return f"{KeyringPointer.from_text(text, str(path)).describe()} (pointer file {path})"
        except IdentityError:
            return f"OS keyring pointer file {path} (malformed)"
    if kind == "pkcs11":
        return f"PKCS#11 token identity file {path}"
    return f"file {path}"


def _check_private(path: Path, what: str, error: type[IdentityError] = IdentityError) -> None:
    """Refuse a file that grants anything to group or others (POSIX only)."""
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is a directory, not a file",
                    hint=f"give the path of the file itself (e.g. {path}/identity.txt), in "
                    "DVC_SECURE_IDENTITY_FILE / DVC_SECURE_PASSPHRASE_FILE or --output")
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error(
            f"{what} {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o})",
            hint=f"chmod 600 {path}",
        )


def _read_identity_file(path: Path) -> str:
    try:
        _check_private(path, "identity file")
    except FileNotFoundError:
        raise IdentityError(
            f"no identity found at {path}",
            hint="create one with 'dvc-secure keygen', or point DVC_SECURE_IDENTITY_FILE at "
            "yours (in CI, put it in the DVC_SECURE_IDENTITY secret)",
        ) from None
    except OSError as exc:
        raise IdentityError(f"cannot read identity file {path}: {exc.__class__.__name__}") from None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityError(f"cannot read identity file {path}: {exc.__class__.__name__}") from None


def load_identity(env: Mapping[str, str] | None = None, prompt: Prompt | None = None) -> Identity:
    """The current identity; ``prompt`` asks for a passphrase (default: getpass on a TTY)."""
    env = env_secrets.environ() if env is None else env
    text = env.get(ENV_IDENTITY)
    if text:
        if text_kind(text) == "pointer":
            raise IdentityError(
                f"${ENV_IDENTITY} holds an OS keyring pointer, not an identity",
                hint="put the identity text (plain or passphrase-protected) in the variable, "
                "or the pointer in a file named by DVC_SECURE_IDENTITY_FILE",
            )
        return _decode(text, f"${ENV_IDENTITY}", env, prompt)
    path = _identity_path(env)
    text = _read_identity_file(path)
    if text_kind(text) != "pointer":
        return _decode(text, str(path), env, prompt)
    pointer = KeyringPointer.from_text(text, str(path))
    stored = keyring_get(pointer, str(path))
    source = pointer.describe()
    if text_kind(stored) == "pointer":
        raise IdentityError(f"{source} holds another pointer, not an identity")
    return _decode(stored, source, env, prompt)


def _decode(text: str, source: str, env: Mapping[str, str], prompt: Prompt | None) -> Identity:
    if text_kind(text) == "plain":
        return Identity.from_text(text, source)
    if text_kind(text) == "pkcs11":  # keys on a token (docs/custody.md)
        from dvc_secure.adapters.custody.pkcs11_token import load_token_identity

        return load_token_identity(text, source, env, prompt)
    from dvc_secure.core.format import passphrase as pp

    pp.parse(text, source)  # structure and bounds first: no prompt for a broken file
    secret = read_passphrase(env, source, prompt=prompt)
    return Identity.from_text(pp.open_envelope(text, secret, source), source)


# --- passphrases ----------------------------------------------------------------------


def _strip_one_line_end(text: str) -> str:
    for end in ("\r\n", "\n", "\r"):
        if text.endswith(end):
            return text[: -len(end)]
    return text


def _tty_prompt() -> Prompt | None:
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return getpass.getpass if interactive else None


def read_passphrase(
    env: Mapping[str, str] | None = None,
    source: str = "the identity",
    confirm: bool = False,
    prompt: Prompt | None = None,
) -> str:
    """The passphrase: DVC_SECURE_PASSPHRASE_FILE (0600), DVC_SECURE_PASSPHRASE, a TTY prompt."""
    env = env_secrets.environ() if env is None else env
    if env.get(ENV_PASSPHRASE_FILE):
        path = Path(env[ENV_PASSPHRASE_FILE])
        try:
            _check_private(path, "passphrase file", PassphraseError)
            secret = _strip_one_line_end(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise PassphraseError(
                f"cannot read passphrase file {path} (${ENV_PASSPHRASE_FILE}): "
                f"{exc.__class__.__name__}",
                hint=f"point {ENV_PASSPHRASE_FILE} at a 0600 file holding the passphrase",
            ) from None
        if not secret:
            raise PassphraseError(f"passphrase file {path} is empty")
        return secret
    if env.get(ENV_PASSPHRASE):
        return env[ENV_PASSPHRASE]
    ask = prompt or _tty_prompt()
    if ask is None:
        raise PassphraseError(
            f"{source} needs a passphrase and there is no terminal to ask for it",
            hint=f"set {ENV_PASSPHRASE_FILE} to a 0600 file holding it, or {ENV_PASSPHRASE} "
            "(a CI secret); it is never taken from the command line",
        )
    try:
        secret = ask(f"passphrase for {source}: ")
        if confirm and ask("repeat the passphrase: ") != secret:
            raise PassphraseError("the two passphrases differ", hint="run the command again")
    except EOFError:
        raise PassphraseError(f"no passphrase given for {source}") from None
    if not secret:
        raise PassphraseError(f"an empty passphrase was given for {source}")
    return secret


# --- the OS keyring (optional 'keyring' package) ----------------------------------------


def _keyring_module() -> ModuleType:
    try:
        import keyring
    except ImportError:
        raise IdentityError(
            "the OS keyring needs the Python package 'keyring', which is not installed",
            hint="pip install 'dvc-secure[oskeyring]' (or: pip install keyring)",
        ) from None
    return keyring


def _no_backend(exc: Exception) -> IdentityError:
    # keyring's own messages name backends, never secrets; other errors show their class only
    detail = str(exc) if exc.__class__.__name__ == "NoKeyringError" else exc.__class__.__name__
    return IdentityError(
        f"the OS keyring is not usable: {detail}",
        hint="install a backend (Linux: a Secret Service such as GNOME Keyring with "
        "'pip install secretstorage'; macOS and Windows work out of the box), choose one with "
        "PYTHON_KEYRING_BACKEND, or store the identity with 'dvc-secure keygen --passphrase'",
    )


def default_keyring_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "default"


def keyring_get(pointer: KeyringPointer, named_by: str) -> str:
    """The text stored in the OS keyring entry ``pointer`` names."""
    kr = _keyring_module()
    try:
        value = kr.get_password(pointer.service, pointer.user)
    except kr.errors.KeyringError as exc:
        raise _no_backend(exc) from None
    if not isinstance(value, str):
        raise IdentityError(
            f"{pointer.describe()} (named by {named_by}) holds no identity",
            hint="the entry was deleted or this is another machine's keyring; restore your "
            "identity from its backup, or create one with 'dvc-secure keygen --force'",
        )
    return value


def keyring_set(pointer: KeyringPointer, text: str, force: bool = False) -> None:
    kr = _keyring_module()
    try:
        existing = kr.get_password(pointer.service, pointer.user)
        if existing is not None and not force:
            raise IdentityError(
                f"{pointer.describe()} already holds a secret; refusing to overwrite it",
                hint="choose another --keyring-user, or --force if you really mean to replace it",
            )
        kr.set_password(pointer.service, pointer.user, text)
    except kr.errors.KeyringError as exc:
        raise _no_backend(exc) from None


# --- writing ----------------------------------------------------------------------------


def write_secret_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the start (no window where it is readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _claim(path: Path, force: bool) -> None:
    """Refuse an existing path (even a dangling symlink) unless ``force``; then remove it."""
    if path.exists() or path.is_symlink():
        if not force:
            raise IdentityError(
                f"{path} already exists; refusing to overwrite an identity",
                hint="use --output for a new file, or --force if you really mean to replace it",
            )
        path.unlink()


def save_identity_text(path: Path, text: str, force: bool = False) -> None:
    """Write an identity text made elsewhere (a PKCS#11 token's, which holds no secret)."""
    _claim(path, force)
    write_secret_file(path, text)


def save_identity(identity: Identity, path: Path, created: str, force: bool = False) -> None:
    _claim(path, force)
    write_secret_file(path, identity.to_text(created))


def protect(identity: Identity, created: str, secret: str, params: ScryptParams | None = None) -> str:
    """The passphrase-protected text of ``identity`` (its public recipient in a comment)."""
    from dvc_secure.core.format import passphrase as pp

    comment = f"dvc-secure identity, passphrase-protected; recipient: {identity.recipient}"
    return pp.seal(identity.to_text(created), secret, params, comment=comment)


def save_protected_identity(
    identity: Identity,
    path: Path,
    created: str,
    secret: str,
    force: bool = False,
    params: ScryptParams | None = None,
) -> None:
    text = protect(identity, created, secret, params)  # the slow part, before touching the path
    _claim(path, force)
    write_secret_file(path, text)


def save_to_os_keyring(
    identity: Identity,
    path: Path,
    created: str,
    user: str,
    force: bool = False,
    secret: str | None = None,
    params: ScryptParams | None = None,
) -> KeyringPointer:
    """Put the identity (protected when ``secret``) in the OS keyring, the pointer at ``path``."""
    pointer = KeyringPointer(KEYRING_SERVICE, user)
    if not force:
        _claim(path, force)  # an existing file raises here, before the keyring is touched
    text = identity.to_text(created) if secret is None else protect(identity, created, secret, params)
    keyring_set(pointer, text, force)
    _claim(path, force)
    write_secret_file(path, pointer.to_text())
    return pointer
