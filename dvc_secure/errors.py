"""The one exception tree of dvc-secure.

Every error carries a message that says what is wrong and a ``hint`` that says what
to do. Messages never contain key material. Only the CLI maps errors to exit codes.
"""

from __future__ import annotations


class DvcSecureError(Exception):
    """Base of every error dvc-secure raises on purpose."""

    exit_code = 1
    # what to do when the raise site gives no more specific hint (every error prints one)
    default_hint = ("run 'dvc-secure verify' and see docs/ for the failing step; report it "
                    "with the full message if it persists")

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint  # specific to the raise site (callers may supply their own if None)

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint or self.default_hint}"


# --- usage and configuration (exit code 2) ---------------------------------------


class ConfigurationError(DvcSecureError):
    """The repository, remote or environment is not set up the way the command needs."""
    default_hint = 'check the repository and remote set-up: dvc remote list, dvc-secure whoami'

    exit_code = 2


class UnsafeRemoteURLError(ConfigurationError):
    """A ``secure://`` URL that DVC could mistake for a plaintext local path."""
    default_hint = (
        'use the form secure://<name of a plain DVC remote>, e.g. dvc-secure init --remote storage')


class RemotePinError(ConfigurationError):
    """DVC's remote configuration differs from the remote pin of the signed keyring."""


class RegistrationError(ConfigurationError):
    """DVC's internals do not have the shape the plugin patches; it refuses to run."""
    default_hint = (
        "install a supported DVC version next to dvc-secure (pip install -U dvc-secure), then run 'dvc doctor'")


class IdentityError(ConfigurationError):
    """No usable identity, or an identity file that cannot be read."""
    default_hint = (
        "check DVC_SECURE_IDENTITY_FILE / DVC_SECURE_IDENTITY, or create an identity with 'dvc-secure keygen'")


class KeyringError(ConfigurationError):
    """The repository keyring is missing, malformed or fails its signature check."""
    default_hint = (
        'restore .dvc/secure/keyring.json from the last good commit: git checkout <commit> -- .dvc/secure/keyring.json')


class NoKeyForEpochError(KeyringError):
    """The current identity holds no wrapped key for the epoch an object needs."""
    default_hint = (
        'ask an admin to grant you that key epoch: dvc-secure grant <your recipient> --role reader')


class SidecarError(ConfigurationError):
    """A sidecar file is malformed or of an unsupported version."""
    default_hint = 'restore the .seal file from git history, or re-seal: dvc-secure seal <metafile>'


class PassphraseError(IdentityError):
    """A passphrase-protected identity could not be opened (wrong passphrase, no prompt)."""
    default_hint = (
        'give the passphrase on a terminal, or set DVC_SECURE_PASSPHRASE_FILE (or DVC_SECURE_PASSPHRASE)')


class AccessDeniedError(KeyringError):
    """The identity's role or grant does not allow the operation (reader sealing, expired grant)."""
    default_hint = (
        'ask a repository admin for the role you need: dvc-secure grant <recipient> --role writer')


class UntrustedPolicyError(KeyringError):
    """A keyring version is not a validly signed successor of the one this clone trusts."""
    default_hint = (
        'fetch the genuine keyring history (git pull), or see docs/policy.md for the trust pin')


class PendingPolicyError(KeyringError):
    """A keyring change awaits more admin signatures before it takes effect."""
    default_hint = (
        "another admin runs 'dvc-secure approve', or drop it with 'dvc-secure approve --discard'")


class ReencryptionError(ConfigurationError):
    """Re-encryption under a new epoch could not complete; it can be resumed."""
    default_hint = 'fix the cause above, then resume with: dvc-secure reencrypt'


class UploadRecordError(ConfigurationError):
    """An upload record (docs/spec/repair.md) is malformed; verify --remote ignores it."""


class NotPushedError(ConfigurationError):
    """Sealing needs the objects on the remote (to pin their ciphertext)."""


class IncidentRecordError(ConfigurationError):
    """An incident record (.dvc/secure/incidents/) is malformed or not validly signed."""


class ErasureError(ConfigurationError):
    """Key domains, crypto-shredding, retention and legal hold (docs/erasure.md)."""
    default_hint = "see docs/erasure.md; 'dvc-secure retention' shows domains, dates and holds"


class ErasedError(ErasureError):
    """The object's key domain was shredded under a valid, signed erasure record."""
    exit_code = 1


class DomainKeyMissingError(ErasureError):
    """A domain key is missing from a secure remote and no valid erasure record says why."""
    exit_code = 1


class LegalHoldError(ErasureError):
    """A legal hold blocks shredding or retention of the domain."""


class ReencryptionInterruptedError(ReencryptionError):
    """Ctrl-C (or SIGINT) stopped a re-encryption; every object is still readable and a
    re-run resumes the same epoch."""

    exit_code = 130


class GitCommandError(DvcSecureError):
    """A git command a check depends on failed: the check cannot run, so it blocks."""


class AuditLogError(DvcSecureError):
    """The audit log is malformed, cannot be read, or fails its chain or signature checks."""
    default_hint = "run 'dvc-secure audit --verify' and see docs/audit.md for each finding"


# --- object format failures (exit code 1) -----------------------------------------


class AuditBoxError(AuditLogError):
    """An audit event envelope that does not parse or does not authenticate (corrupted or edited)."""


class RestoreMismatchError(DvcSecureError):
    """The restored content does not hash to what the old version sealed."""


class ObjectFormatError(DvcSecureError):
    """An encrypted object failed to parse, authenticate or verify."""
    default_hint = (
        "the stored object is damaged or was replaced: run 'dvc-secure verify --remote', then push it again from a clone that has it (dvc push)")


class HeaderError(ObjectFormatError):
    """The object header is malformed (bad magic, reserved bits, out-of-range field)."""
    default_hint = (
        "the stored object is damaged or not a dvc-secure object: run 'dvc-secure verify --remote'")


class UnsupportedVersionError(HeaderError):
    """The object uses a format version or cipher suite this release does not know."""
    default_hint = 'upgrade dvc-secure (pip install -U dvc-secure)'


class WrongKeyError(ObjectFormatError):
    """The header MAC does not verify: wrong data key, or the object is not this object."""
    default_hint = (
        "the object was swapped or your keyring is stale: git pull, then 'dvc-secure verify --remote'")


class AuthenticationError(ObjectFormatError):
    """A segment failed AEAD authentication (corruption, reordering, tampering)."""
    default_hint = (
        "the stored object was corrupted or tampered with: run 'dvc-secure verify --remote'")


class TruncationError(ObjectFormatError):
    """The ciphertext ended before its final segment."""
    default_hint = (
        "the stored object was truncated: run 'dvc-secure verify --remote' and push it again (dvc push)")


class TrailingDataError(ObjectFormatError):
    """Bytes follow the final segment (extension attack or corruption)."""
    default_hint = "the stored object has extra bytes appended: run 'dvc-secure verify --remote'"


class SignatureError(ObjectFormatError):
    """The writer signature or the plaintext digest in the trailer does not verify."""
    default_hint = (
        "the object's signature does not verify: run 'dvc-secure verify --remote'; a writer re-pushes it")


class UntrustedSignerError(SignatureError):
    """The object was signed by a key that is not a writer in the keyring."""
    default_hint = (
        "the object was pushed by someone who is not a writer: run 'dvc-secure verify --remote' and 'dvc-secure audit'")


class ContentMismatchError(SignatureError):
    """A former signer's object whose content is not what its name (content hash) says."""


# --- key custody: KMS and hardware tokens (docs/custody.md) ------------------------


class CustodyError(ConfigurationError):
    """A key kept in a KMS or on a hardware token could not be used (refused, missing,
    disabled, deleted, unsupported), or the optional extra that reaches it is not installed."""
    default_hint = "see docs/custody.md for the set-up of KMS keys and PKCS#11 tokens"


class KmsDeniedError(CustodyError):
    """The KMS refused to unwrap (IAM denial, key disabled, pending deletion or deleted)."""
    default_hint = ("ask whoever administers the KMS key for decrypt permission; a disabled or "
                    "deleted key makes the data of its epochs unreadable for everyone")


class TokenMechanismError(CustodyError):
    """A PKCS#11 token lacks a mechanism dvc-secure needs."""
