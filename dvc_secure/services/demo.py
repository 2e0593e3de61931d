"""``dvc-secure demo``: a throwaway git + DVC repository with a local secure remote.

Runs the real ``dvc`` and ``dvc-secure`` commands in subprocesses, exactly as a user
would, and checks each promise it shows: every file on the storage is one of the kinds
dvc-secure writes and holds no plaintext and no DVC object id (:mod:`demo_storage`), the
sealed history verifies against the storage, a pull restores identical bytes, and a
tampered object is refused without touching the workspace. Progress goes to ``say``; the
CLI decides where it is printed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY, ENV_IDENTITY_FILE
from dvc_secure.errors import ConfigurationError, DvcSecureError
from dvc_secure.services.demo_storage import (
    AUDIT_EVENT,
    KINDS,
    OBJECT,
    REMOTE_INDEX,
    UPLOAD_RECORD,
    StorageSurvey,
    survey_storage,
)

_MARKER = "Jane Example,1984-02-29,HbA1c 6.1"  # a 'sensitive' row we must never see in storage
_NEEDLE = 32  # bytes of each data file searched for in the storage (must never be found)

Say = Callable[[str], None]


class DemoFailure(Exception):
    pass


@dataclass
class DemoResult:
    base: Path
    checks: list[str] = field(default_factory=list)
    failure: str | None = None
    kept: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None


class _Demo:
    def __init__(self, base: Path, say: Say, checks: list[str]) -> None:
        self.base = base
        self.repo = base / "repo"
        self.storage = base / "storage"
        self.identity = base / "demo-identity.txt"
        self.say = say
        self.checks = checks
        self.env = {k: v for k, v in os.environ.items() if k not in (ENV_IDENTITY, ENV_IDENTITY_FILE)}
        # the demo never touches the user's real identity
        self.env[ENV_IDENTITY_FILE] = str(self.identity)
        self.env.setdefault("GIT_AUTHOR_NAME", "dvc-secure demo")
        self.env.setdefault("GIT_AUTHOR_EMAIL", "demo@example.invalid")
        self.env.setdefault("GIT_COMMITTER_NAME", "dvc-secure demo")
        self.env.setdefault("GIT_COMMITTER_EMAIL", "demo@example.invalid")
        self.env["DVC_NO_ANALYTICS"] = "1"

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        shown = " ".join(c if c != sys.executable else "python" for c in cmd)
        self.say(f"  $ {shown}")
        proc = subprocess.run(cmd, cwd=self.repo, env=self.env, text=True, capture_output=True)
        if check and proc.returncode != 0:
            raise DemoFailure(f"'{shown}' failed ({proc.returncode}):\n{proc.stderr.strip()}")
        return proc

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def secure(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "dvc_secure.cli.main", *args, check=check)

    def ok(self, text: str) -> None:
        self.checks.append(text)
        self.say(f"  ok: {text}")

    def step(self, text: str) -> None:
        self.say(f"\n== {text}")


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[str(path.relative_to(root))] = h.hexdigest()
    return out


def _md5(path: Path) -> str:
    h = hashlib.md5()  # DVC's object ids: we check they never appear in storage names
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _make_data(data: Path, size_mib: int) -> None:
    (data / "images").mkdir(parents=True)
    rows = ["name,birth_date,lab_result"] + [f"Patient {i},19{i % 90 + 10}-01-01,{i % 7}.0"
                                             for i in range(500)]
    rows.insert(250, _MARKER)
    (data / "patients.csv").write_text("\n".join(rows) + "\n")
    for i in range(5):
        (data / "images" / f"scan_{i}.bin").write_bytes(os.urandom(64 * 1024 + i))
    with (data / "volume.raw").open("wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))


def _needles(data: Path) -> list[bytes]:
    """Byte strings of the plaintext that must appear in no stored file."""
    needles = [_MARKER.encode()]
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            head = f.read(_NEEDLE)
        if len(head) == _NEEDLE:
            needles.append(head)
    return needles


def _survey(d: _Demo, md5s: set[str], needles: list[bytes]) -> StorageSurvey:
    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys

    # the demo identity's keys, to tell this repository's hidden names and events apart
    keys = LazyRepoKeys(str(d.repo / ".dvc"), env=d.env).get()
    name_key, scheme = keys.remote_names("storage")
    return survey_storage(d.storage, name_key=name_key, data_keys=keys.keyset.data_keys,
                          plaintext=needles, md5s=md5s, name_scheme=scheme)


def _plural(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun}{'es' if noun.endswith('x') else 's'}"


def _show_storage(d: _Demo, survey: StorageSurvey) -> None:
    shown = []
    for kind in KINDS:
        shown += survey.of_kind(kind)[:1]
    for f in shown:
        d.say(f"    {f.rel}  ({f.size} bytes; {f.kind})")
    if len(survey.files) > len(shown):
        d.say(f"    … {len(survey.files) - len(shown)} more")


def _scenario(d: _Demo, size_mib: int) -> None:
    d.step("1. a fresh git + DVC repository, an identity and a local storage directory")
    d.repo.mkdir(parents=True)
    d.run("git", "init", "-q")
    d.dvc("init", "-q")
    d.secure("keygen")
    mode = d.identity.stat().st_mode & 0o777
    if mode != 0o600:
        raise DemoFailure(f"identity file mode is {mode:o}, expected 600")
    d.ok("identity created with mode 0600 (outside the repository)")
    d.dvc("remote", "add", "storage", str(d.storage))
    d.secure("init", "--remote", "storage", "--member-name", "demo")
    d.ok("keyring created; remote 'vault' = secure://storage is the default")

    d.step("2. track a dataset, push it, seal it")
    data = d.repo / "data"
    _make_data(data, size_mib)
    before = _digests(data)
    md5s = {_md5(p) for p in data.rglob("*") if p.is_file()}
    needles = _needles(data)
    d.dvc("add", "-q", "data")
    md5s |= set(re.findall(r"md5: ([0-9a-f]{32})\.dir", (d.repo / "data.dvc").read_text()))
    d.dvc("push")
    d.secure("seal", "data")
    d.run("git", "add", "-A")
    d.run("git", "commit", "-q", "-m", "track data with dvc-secure")
    d.ok("data.dvc.seal committed: SHA-256 of every file, signed, pinned to the stored ciphertext")
    d.secure("verify", "--remote")
    d.ok("'dvc-secure verify --remote': the sealed history verifies, every object is stored")

    d.step("3. what the storage provider sees")
    survey = _survey(d, md5s, needles)
    _show_storage(d, survey)
    if survey.problems:
        raise DemoFailure("the storage is not what dvc-secure promises:\n  "
                          + "\n  ".join(survey.problems))
    counts = survey.counts()
    if not counts.get(OBJECT) or not counts.get(AUDIT_EVENT) or not counts.get(REMOTE_INDEX):
        raise DemoFailure(f"expected DVC objects, audit events and a remote index, found {counts}")
    d.ok(f"{len(survey.files)} files, each of a known kind: "
         + ", ".join(_plural(counts[kind], kind) for kind in KINDS if kind in counts))
    d.ok("objects and manifests: ciphertext (magic DVCSEC) under hidden names of this keyring")
    d.ok("audit events: encrypted with the team's key, readable by members only")
    d.ok("remote index: lists only hidden names, sizes and ciphertext digests of stored files")
    if counts.get(UPLOAD_RECORD):
        d.ok("upload records: signed lists of hidden names, sizes and ciphertext digests")
    d.ok("no plaintext and no DVC object id (MD5) in any storage name or file")
    status = d.dvc("status", "-c")
    d.say("    " + status.stdout.strip().replace("\n", "\n    "))
    d.ok("'dvc status -c' works over hidden names")

    d.step("4. wipe the cache and the workspace, pull it back")
    shutil.rmtree(d.repo / ".dvc" / "cache")
    shutil.rmtree(data)
    d.dvc("pull")
    if _digests(data) != before:
        raise DemoFailure("pulled data differs from what was pushed")
    d.ok(f"{len(before)} files pulled, decrypted, signature-checked, byte-identical (SHA-256)")

    d.step("5. an attacker flips one byte in the largest stored object")
    victim = d.storage / max(survey.of_kind(OBJECT), key=lambda f: f.size).rel
    original = victim.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    victim.write_bytes(bytes(tampered))
    if d.secure("verify", "--remote", check=False).returncode != 1:
        raise DemoFailure("'dvc-secure verify --remote' did not report the tampered object")
    d.ok("'dvc-secure verify --remote' (the CI gate, no key needed) reports it")
    shutil.rmtree(d.repo / ".dvc" / "cache")
    shutil.rmtree(data)
    proc = d.dvc("pull", check=False)
    if proc.returncode == 0:
        raise DemoFailure("a tampered object was accepted")
    reason = [line for line in proc.stderr.splitlines() if "authentication" in line or "object" in line]
    d.say("    " + (reason[0].strip() if reason else proc.stderr.strip().splitlines()[0]))
    if (data / "volume.raw").exists():
        raise DemoFailure("the tampered file reached the workspace")
    d.ok("pull refused the tampered object; nothing of it reached the workspace")
    victim.write_bytes(original)
    d.dvc("pull")
    if _digests(data) != before:
        raise DemoFailure("data differs after restoring the object")
    d.ok("with the object restored, the pull completes")


def run_demo(say: Say, directory: Path | None = None, keep: bool = False,
             size_mib: int = 8) -> DemoResult:
    """Run the demonstration; a failed check is ``result.failure`` (the directory is kept)."""
    if directory is not None:
        if directory.exists() and any(directory.iterdir()):
            raise ConfigurationError(f"{directory} is not empty",
                                     hint="give --dir a new or empty directory")
        directory.mkdir(parents=True, exist_ok=True)
    base = directory or Path(tempfile.mkdtemp(prefix="dvc-secure-demo-"))
    result = DemoResult(base)
    say(f"dvc-secure demo in {base}")
    try:
        _scenario(_Demo(base, say, result.checks), size_mib)
    except (DemoFailure, DvcSecureError) as exc:  # e.g. the demo keyring did not load
        result.failure = str(exc)
    result.kept = not result.ok or keep or directory is not None
    if not result.kept:
        shutil.rmtree(base, ignore_errors=True)
    return result
