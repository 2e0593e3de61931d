"""The one exception tree of dvc-secure.

Every error carries a message that says what is wrong and a ``hint`` that says what
to do. Messages never contain key material. Only the CLI maps errors to exit codes.
"""

from __future__ import annotations


class DvcSecureError(Exception):
    """Base of every error dvc-secure raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


# --- usage and configuration (exit code 2) ---------------------------------------


class ConfigurationError(DvcSecureError):
    """The repository, remote or environment is not set up the way the command needs."""

    exit_code = 2


class UnsafeRemoteURLError(ConfigurationError):
    """A ``secure://`` URL that DVC could mistake for a plaintext local path."""


class RemotePinError(ConfigurationError):
    """DVC's remote configuration differs from the remote pin of the signed keyring."""


class RegistrationError(ConfigurationError):
    """DVC's internals do not have the shape the plugin patches; it refuses to run."""


class IdentityError(ConfigurationError):
    """No usable identity, or an identity file that cannot be read."""


class KeyringError(ConfigurationError):
    """The repository keyring is missing, malformed or fails its signature check."""


class NoKeyForEpochError(KeyringError):
    """The current identity holds no wrapped key for the epoch an object needs."""


class SidecarError(ConfigurationError):
    """A sidecar file is malformed or of an unsupported version."""


class PassphraseError(IdentityError):
    """A passphrase-protected identity could not be opened (wrong passphrase, no prompt)."""


class AccessDeniedError(KeyringError):
    """The identity's role or grant does not allow the operation (reader sealing, expired grant)."""


class UntrustedPolicyError(KeyringError):
    """A keyring version is not a validly signed successor of the one this clone trusts."""


class PendingPolicyError(KeyringError):
    """A keyring change awaits more admin signatures before it takes effect."""


class ReencryptionError(ConfigurationError):
    """Re-encryption under a new epoch could not complete; it can be resumed."""


class UploadRecordError(ConfigurationError):
    """An upload record (docs/spec/repair.md) is malformed; verify --remote ignores it."""


class IncidentRecordError(ConfigurationError):
    """An incident record (.dvc/secure/incidents/) is malformed or not validly signed."""


class ReencryptionInterruptedError(ReencryptionError):
    """Ctrl-C (or SIGINT) stopped a re-encryption; every object is still readable and a
    re-run resumes the same epoch."""

    exit_code = 130


class GitCommandError(DvcSecureError):
    """A git command a check depends on failed: the check cannot run, so it blocks."""


class AuditLogError(DvcSecureError):
    """The audit log is malformed, cannot be read, or fails its chain or signature checks."""


# --- object format failures (exit code 1) -----------------------------------------


class ObjectFormatError(DvcSecureError):
    """An encrypted object failed to parse, authenticate or verify."""


class HeaderError(ObjectFormatError):
    """The object header is malformed (bad magic, reserved bits, out-of-range field)."""


class UnsupportedVersionError(HeaderError):
    """The object uses a format version or cipher suite this release does not know."""


class WrongKeyError(ObjectFormatError):
    """The header MAC does not verify: wrong data key, or the object is not this object."""


class AuthenticationError(ObjectFormatError):
    """A segment failed AEAD authentication (corruption, reordering, tampering)."""


class TruncationError(ObjectFormatError):
    """The ciphertext ended before its final segment."""


class TrailingDataError(ObjectFormatError):
    """Bytes follow the final segment (extension attack or corruption)."""


class SignatureError(ObjectFormatError):
    """The writer signature or the plaintext digest in the trailer does not verify."""


class UntrustedSignerError(SignatureError):
    """The object was signed by a key that is not a writer in the keyring."""


class ContentMismatchError(SignatureError):
    """A former signer's object whose content is not what its name (content hash) says."""
