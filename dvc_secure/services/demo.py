"""``dvc-secure demo``: a throwaway git + DVC repository with a local secure remote.

Runs the real ``dvc`` CLI in subprocesses, exactly as a user would, and checks each
promise it shows: ciphertext only on the storage, names hidden, a pull that restores
identical bytes, and a tampered object that is refused without touching the workspace.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY, ENV_IDENTITY_FILE

MAGIC = b"DVCSEC"
_MARKER = "Jane Example,1984-02-29,HbA1c 6.1"  # a 'sensitive' row we must never see in storage


class DemoFailure(Exception):
    pass


class _Demo:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.repo = base / "repo"
        self.storage = base / "storage"
        self.identity = base / "demo-identity.txt"
        self.env = {k: v for k, v in os.environ.items() if k not in (ENV_IDENTITY, ENV_IDENTITY_FILE)}
        # the demo never touches the user's real identity
        self.env[ENV_IDENTITY_FILE] = str(self.identity)
        self.env.setdefault("GIT_AUTHOR_NAME", "dvc-secure demo")
        self.env.setdefault("GIT_AUTHOR_EMAIL", "demo@example.invalid")
        self.env.setdefault("GIT_COMMITTER_NAME", "dvc-secure demo")
        self.env.setdefault("GIT_COMMITTER_EMAIL", "demo@example.invalid")
        self.env["DVC_NO_ANALYTICS"] = "1"
        self.checks: list[str] = []

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        shown = " ".join(c if c != sys.executable else "python" for c in cmd)
        print(f"  $ {shown}")
        proc = subprocess.run(cmd, cwd=self.repo, env=self.env, text=True, capture_output=True)
        if check and proc.returncode != 0:
            raise DemoFailure(f"'{shown}' failed ({proc.returncode}):\n{proc.stderr.strip()}")
        return proc

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def secure(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "dvc_secure.cli.main", *args)

    def ok(self, text: str) -> None:
        self.checks.append(text)
        print(f"  ok: {text}")

    @staticmethod
    def step(text: str) -> None:
        print(f"\n== {text}")


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

    d.step("2. track a dataset and push it")
    data = d.repo / "data"
    _make_data(data, size_mib)
    before = _digests(data)
    md5s = {_md5(p) for p in data.rglob("*") if p.is_file()}
    d.dvc("add", "-q", "data")
    d.run("git", "add", "-A")
    d.run("git", "commit", "-q", "-m", "track data with dvc-secure")
    d.dvc("push")

    d.step("3. what the storage provider sees")
    stored = sorted(p for p in d.storage.rglob("*") if p.is_file())
    for p in stored[:4]:
        print(f"    {p.relative_to(d.storage)}  ({p.stat().st_size} bytes)")
    if len(stored) > 4:
        print(f"    … {len(stored) - 4} more")
    marker = _MARKER.encode()
    # dvc-secure/ holds the plugin's own files: the push's signed upload record (hidden
    # names, sizes, ciphertext digests) and the sealed audit event, never DVC objects
    records = [p for p in stored if p.relative_to(d.storage).parts[0] == "dvc-secure"]
    for p in stored:
        with p.open("rb") as f:
            if p not in records and f.read(len(MAGIC)) != MAGIC:
                raise DemoFailure(f"{p} is not a dvc-secure object")
        content = p.read_bytes()
        if marker in content:
            raise DemoFailure(f"plaintext found in {p}")
        if any(m[2:] in p.name or m in p.name or (p in records and m.encode() in content)
               for m in md5s):
            raise DemoFailure(f"an MD5 object id is visible in {p}")
    d.ok(f"{len(stored) - len(records)} objects, all ciphertext (magic DVCSEC), no plaintext "
         f"row found; {len(records)} file(s) of dvc-secure's own, holding no object id")
    d.ok("no DVC object id (MD5) appears in any storage name")
    status = d.dvc("status", "-c")
    print("    " + status.stdout.strip().replace("\n", "\n    "))
    d.ok("'dvc status -c' works over hidden names")

    d.step("4. wipe the cache and the workspace, pull it back")
    shutil.rmtree(d.repo / ".dvc" / "cache")
    shutil.rmtree(data)
    d.dvc("pull")
    if _digests(data) != before:
        raise DemoFailure("pulled data differs from what was pushed")
    d.ok(f"{len(before)} files pulled, decrypted, signature-checked, byte-identical (SHA-256)")

    d.step("5. an attacker flips one byte in the largest stored object")
    victim = max(stored, key=lambda p: p.stat().st_size)
    original = victim.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    victim.write_bytes(bytes(tampered))
    shutil.rmtree(d.repo / ".dvc" / "cache")
    shutil.rmtree(data)
    proc = d.dvc("pull", check=False)
    if proc.returncode == 0:
        raise DemoFailure("a tampered object was accepted")
    reason = [line for line in proc.stderr.splitlines() if "authentication" in line or "object" in line]
    print("    " + (reason[0].strip() if reason else proc.stderr.strip().splitlines()[0]))
    if (data / "volume.raw").exists():
        raise DemoFailure("the tampered file reached the workspace")
    d.ok("pull refused the tampered object; nothing of it reached the workspace")
    victim.write_bytes(original)
    d.dvc("pull")
    if _digests(data) != before:
        raise DemoFailure("data differs after restoring the object")
    d.ok("with the object restored, the pull completes")


def run_demo(directory: Path | None = None, keep: bool = False, size_mib: int = 8) -> int:
    base = directory or Path(tempfile.mkdtemp(prefix="dvc-secure-demo-"))
    if directory is not None:
        if directory.exists() and any(directory.iterdir()):
            print(f"dvc-secure demo: {directory} is not empty", file=sys.stderr)
            return 2
        directory.mkdir(parents=True, exist_ok=True)
    demo = _Demo(base)
    print(f"dvc-secure demo in {base}")
    try:
        _scenario(demo, size_mib)
    except DemoFailure as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        print(f"(left in place for inspection: {base})", file=sys.stderr)
        return 1
    print(f"\nall {len(demo.checks)} checks passed.")
    if keep or directory is not None:
        print(f"demo repository kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    return run_demo()
