"""The front door: the commands the README and docs/quickstart.md show, run as written;
``dvc-secure demo``; and the storage check the demo relies on.

The documents are the test input: every command line of their shell code blocks is run,
in order, with ``bash`` in a temporary git + DVC repository whose remote is a local
directory, with this environment's ``dvc`` and ``dvc-secure`` first on ``PATH``. Only
the placeholders listed in ``SUBSTITUTIONS`` are replaced (each with why), and only the
commands listed in ``SKIPPED`` are not run (each with why). A new command in either
document runs automatically; one that fails, or uses a subcommand or flag that no longer
exists, fails the test. A block preceded by ``<!-- front-door: run-as colleague -->`` runs
on a second machine (its own home directory, hence its own default identity).

Set-up beyond the documents is only what they state in words: the README's block starts
inside a git + DVC repository with a ``data/`` directory; the quickstart starts in an
empty project directory holding ``data/images`` and has an (empty) team git server. A
command the test machine itself cannot run is recorded as skipped with the reason
(``DocRun.not_here``: today only ``dvc doctor`` when a stray ``.dvc`` directory above the
temporary directory makes DVC open that as the repository).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
from dvc_secure.core.sidecar.remote_index import StoredObject, build_index, index_storage_path
from dvc_secure.services.demo_storage import (
    AUDIT_EVENT,
    MANIFEST,
    OBJECT,
    REMOTE_INDEX,
    survey_storage,
)
from tests.conftest import DVC_SECURE, SecureRepo, base_env, run
from tests.integration.secure_helpers import MARKER, object_ids

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "quickstart.md"
BIN = str(Path(sys.executable).parent)

# document -> [(placeholder as written, key of the real value, why)]
SUBSTITUTIONS: dict[str, list[tuple[str, str, str]]] = {
    "README.md": [
        ("s3://bucket/ml", "storage", "no S3 here: a local directory is a DVC remote too"),
        ("age1…+dvcsign1…", "card", "a colleague's member card: a real one, made by "
         "'dvc-secure keygen' + 'whoami' for a second identity in the test"),
    ],
    "quickstart.md": [
        ("s3://bucket/ml-data", "storage", "no S3 here: a local directory is a DVC remote too"),
        ("git@git.example.com:team/ml-data.git", "origin",
         "the team's git server: a local bare repository named ml-data.git (so that "
         "'git clone' makes the directory ml-data, as with the URL)"),
        ("age1…+dvcsign1…", "card", "the member card the colleague's 'dvc-secure whoami' "
         "printed a block earlier"),
    ],
}
# command as written -> why it is not run here
SKIPPED: dict[str, str] = {
    "pip install dvc-secure": "installs from a package index; this test runs in the "
    "environment where this checkout is installed",
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/dvc-secure demo":
    "a fresh virtual environment and a non-editable install take minutes: .ci/run runs "
    "exactly this line as its front-door step; test_demo_passes runs 'dvc-secure demo'",
    "bash .ci/run": "the CI entry point itself (the whole suite)",
}
_FENCE = re.compile(r"^\s*```(\S*)\s*$")
_RUN_AS = re.compile(r"^\s*<!--\s*front-door:\s*run-as\s+(\S+)\s*-->\s*$")
_COMMENT = re.compile(r"\s+#\s.*$")
_SHELL_FENCES = ("", "sh", "bash", "shell", "console")


@dataclass
class Block:
    doc: str
    line: int
    run_as: str
    commands: list[str]


@dataclass
class Machine:
    """One person's machine: a home directory (default identity) and a working directory."""

    cwd: Path
    env: dict[str, str]


@dataclass
class DocRun:
    doc: str
    values: dict[str, str]
    machines: dict[str, Machine]
    not_here: dict[str, str] = field(default_factory=dict)  # command -> why not on this machine
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    stdout: dict[str, str] = field(default_factory=dict)  # command as written -> its block's output


def doc_blocks(path: Path) -> list[Block]:
    """The shell code blocks of a markdown file, as lists of command lines."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i, run_as = 0, "you"
    while i < len(lines):
        marker = _RUN_AS.match(lines[i])
        fence = _FENCE.match(lines[i])
        if marker:
            run_as = marker.group(1)
        elif fence and fence.group(1) in _SHELL_FENCES:
            start, body = i + 1, []
            i += 1
            while not _FENCE.match(lines[i]):
                body.append(lines[i])
                i += 1
            commands: list[str] = []
            pending = ""
            for raw in body:
                text = pending + raw.strip()
                if text.endswith("\\"):
                    pending = text[:-1] + " "
                    continue
                pending = ""
                text = _COMMENT.sub("", text).strip()
                if text:
                    commands.append(text)
            blocks.append(Block(path.name, start, run_as, commands))
            run_as = "you"
        elif fence:  # yaml, json, ...: skip the whole block
            i += 1
            while not _FENCE.match(lines[i]):
                i += 1
        elif lines[i].strip():
            run_as = "you" if not lines[i].lstrip().startswith("<!--") else run_as
        i += 1
    return blocks


def _substitute(doc_run: DocRun, command: str) -> str:
    for literal, key, _why in SUBSTITUTIONS.get(doc_run.doc, []):
        pattern = re.compile(r"(?<!\S)" + re.escape(literal) + r"(?!\S)")
        if pattern.search(command):
            assert key in doc_run.values, f"no value for {literal!r} yet: {command}"
            command = pattern.sub(lambda _m, k=key: shlex.quote(doc_run.values[k]), command)
            doc_run.used.add(literal)
    return command


def run_block(doc_run: DocRun, block: Block) -> str:
    """Run one code block with bash on its machine; returns its stdout."""
    machine = doc_run.machines[block.run_as]
    pwd_file = machine.cwd.parent / f".front-door-pwd-{block.run_as}"
    script = ["set -eo pipefail"]
    for command in block.commands:
        if command in SKIPPED or command in doc_run.not_here:
            doc_run.skipped.append(command)
            doc_run.used.add(command)
            continue
        doc_run.ran.append(command)
        script.append(f"printf '%s\\n' {shlex.quote('>>> ' + command)} >&2")
        script.append(_substitute(doc_run, command))
    script.append(f"pwd > {shlex.quote(str(pwd_file))}")
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=machine.cwd, env=machine.env,
                          text=True, capture_output=True)
    if proc.returncode != 0:
        raise AssertionError(
            f"{block.doc}, code block at line {block.line} (as {block.run_as}): a documented "
            f"command failed ({proc.returncode}); the last '>>>' line below is the one\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    machine.cwd = Path(pwd_file.read_text().strip())  # a block may 'cd' (git clone && cd)
    for command in block.commands:
        doc_run.stdout[command] = proc.stdout
    return proc.stdout


def _machine(tmp_path: Path, name: str) -> Machine:
    home = tmp_path / f"{name}-home"
    (home / "work").mkdir(parents=True)
    env = base_env(home)  # no DVC_SECURE_* variable: the identity lives at its default path
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return Machine(cwd=home / "work", env=env)


def _write_data(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True)
    (directory / "labels.csv").write_bytes(b"id,label\n" + MARKER + b",cat\n")
    (directory / "scan.bin").write_bytes(hashlib.sha256(b"scan").digest() * 4096)
    return _digests(directory)


def _digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _dvc_repo_above(path: Path) -> Path | None:
    """A '.dvc' directory above ``path`` (DVC would take it as the repository there)."""
    for parent in path.parents:
        if (parent / ".dvc").is_dir():
            return parent
        if os.path.ismount(parent):
            return None
    return None


def _member_card(output: str) -> str:
    cards = re.findall(r"^member-card: (\S+)$", output, flags=re.MULTILINE)
    assert len(cards) == 1, output
    return cards[0]


def _check_every_entry_used(doc_run: DocRun) -> None:
    stale = [lit for lit, _k, _w in SUBSTITUTIONS[doc_run.doc] if lit not in doc_run.used]
    assert stale == [], f"{doc_run.doc} no longer shows these placeholders: {stale}"


def _no_plaintext_in(storage: Path) -> None:
    for path in storage.rglob("*"):
        if path.is_file():
            assert MARKER not in path.read_bytes(), f"plaintext in {path}"


def test_readme_commands_run_as_written(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    you = _machine(tmp_path, "you")
    # precondition the README states in words: run inside a git + DVC repository
    run(["git", "init", "-q"], you.cwd, you.env)
    run(["dvc", "init", "-q"], you.cwd, you.env)
    before = _write_data(you.cwd / "data")
    # a colleague's identity, only for its member card
    colleague = dict(you.env, **{ENV_IDENTITY_FILE: str(tmp_path / "colleague-identity.txt")})
    run([*DVC_SECURE, "keygen"], you.cwd, colleague)
    card = _member_card(run([*DVC_SECURE, "whoami"], you.cwd, colleague).stdout)
    storage = tmp_path / "storage"
    doc_run = DocRun("README.md", {"storage": str(storage), "card": card}, {"you": you})

    for block in doc_blocks(README):
        run_block(doc_run, block)

    _check_every_entry_used(doc_run)
    assert sorted(doc_run.skipped) == sorted(
        ["pip install dvc-secure", "bash .ci/run",
         "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/dvc-secure demo"])
    assert "dvc-secure grant age1…+dvcsign1… --role reader" in doc_run.ran
    ring = json.loads(run([*DVC_SECURE, "members", "--json"], you.cwd, you.env).stdout)
    assert ring["policy_version"] == 2  # the grant really happened
    assert sorted(m["role"] for m in ring["members"]) == ["admin", "reader"]
    assert _digests(you.cwd / "data") == before  # 'rm -rf .dvc/cache data && dvc pull'
    _no_plaintext_in(storage)


def test_quickstart_commands_run_as_written_and_verify(tmp_path: Path,
                                                       isolated_env: dict[str, str]) -> None:
    you, colleague = _machine(tmp_path, "you"), _machine(tmp_path, "colleague")
    before = _write_data(you.cwd / "data" / "images")  # 'your data'
    origin = tmp_path / "server" / "ml-data.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path, you.env)
    storage = tmp_path / "storage"
    doc_run = DocRun("quickstart.md", {"storage": str(storage), "origin": str(origin)},
                     {"you": you, "colleague": colleague})
    stray = _dvc_repo_above(you.cwd)
    if stray is not None:  # outside a repository, DVC would open that one and fail
        doc_run.not_here["dvc doctor"] = (f"this machine has a stray DVC repository at {stray}, "
                                          "above the test's directories")

    for block in doc_blocks(QUICKSTART):
        out = run_block(doc_run, block)
        if block.run_as == "colleague" and "member-card:" in out:
            doc_run.values["card"] = _member_card(out)

    _check_every_entry_used(doc_run)
    assert sorted(set(doc_run.skipped) - set(doc_run.not_here)) == sorted(
        ["pip install dvc-secure",
         "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/dvc-secure demo"])
    if "dvc doctor" not in doc_run.not_here:
        assert "secure (dvc-secure" in doc_run.stdout["dvc doctor"]
    for command in ("dvc-secure install", "dvc-secure verify", "dvc-secure verify --remote",
                    "dvc-secure grant age1…+dvcsign1… --name bob --role writer"):
        assert command in doc_run.ran
    # following the document literally leads to a verified repository, in both clones
    clone = colleague.cwd
    assert clone.name == "ml-data" and clone != you.cwd
    for machine in (you, colleague):
        proc = run([*DVC_SECURE, "verify", "--all-revisions"], machine.cwd, machine.env, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        sealed = run(["git", "ls-files", "data/images.dvc.seal"], machine.cwd, machine.env).stdout
        assert sealed.strip() == "data/images.dvc.seal"  # sealed by the pre-commit hook
    proc = run([*DVC_SECURE, "verify", "--remote"], you.cwd, you.env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _digests(clone / "data" / "images") == before
    members = json.loads(run([*DVC_SECURE, "members", "--json"], clone, colleague.env).stdout)
    assert "bob" in json.dumps(members)
    _no_plaintext_in(storage)


def test_a_failing_documented_command_fails_the_run(tmp_path: Path,
                                                    isolated_env: dict[str, str]) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("text\n\n```\ndvc-secure --version\n"
                   "dvc-secure verify --no-such-flag   # a flag that does not exist\n```\n")
    you = _machine(tmp_path, "you")
    doc_run = DocRun("doc.md", {}, {"you": you})
    (block,) = doc_blocks(doc)
    assert block.commands == ["dvc-secure --version", "dvc-secure verify --no-such-flag"]
    with pytest.raises(AssertionError, match="no-such-flag"):
        run_block(doc_run, block)


def test_demo_passes(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    env = dict(isolated_env, PATH=BIN + os.pathsep + isolated_env.get("PATH", ""))
    proc = run(["dvc-secure", "demo", "--dir", str(tmp_path / "demo"), "--size-mib", "1"],
               tmp_path, env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"all \d+ checks passed", proc.stdout)
    for kind in ("DVC objects", "audit events", "1 remote index", "1 directory manifest"):
        assert kind in proc.stdout
    assert not (tmp_path / "home" / ".config" / "dvc-secure").exists()  # its own identity only


def test_demo_subcommand_help_describes_it() -> None:
    proc = subprocess.run([*DVC_SECURE, "demo", "--help"], text=True, capture_output=True)
    assert proc.returncode == 0
    assert "self-contained demo" in proc.stdout


# --- the storage check behind the demo's step 3 ------------------------------------------


def _survey(repo: SecureRepo):  # type: ignore[no-untyped-def]
    keys = LazyRepoKeys(str(repo.root / ".dvc"), env=repo.env).get()
    md5s = set(object_ids(repo).values())
    name_key, scheme = keys.remote_names("storage")
    return survey_storage(repo.storage, name_key=name_key, name_scheme=scheme,
                          data_keys=keys.keyset.data_keys, plaintext=[MARKER],
                          md5s={m.removesuffix(".dir") for m in md5s})


def test_storage_survey_knows_every_file_and_flags_anything_else(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.secure("seal")  # uploads the remote indexes beside the objects
    clean = _survey(repo)
    assert clean.problems == []
    counts = clean.counts()
    assert counts[OBJECT] >= 6 and counts[MANIFEST] == 1 and counts[REMOTE_INDEX] == 2
    assert counts[AUDIT_EVENT] >= 1
    assert sum(counts.values()) == len([p for p in repo.storage.rglob("*") if p.is_file()])

    event = clean.of_kind(AUDIT_EVENT)[0]
    obj = clean.of_kind(OBJECT)[0]
    some_md5 = sorted(object_ids(repo).values())[0].removesuffix(".dir")
    bad: dict[str, bytes] = {
        "notes.txt": b"hello",  # a file of no known kind
        obj.rel[:3] + "zz" + obj.rel[5:]: (repo.storage / obj.rel).read_bytes(),  # not our name
        "dvc-secure/audit/v1/" + "0" * 32 + "/0000000001.evt": b'{"action": "push"}',
        "dvc-secure/audit/v1/README": b"x",
        "dvc-secure/other/thing.json": b"{}",
        f"files/md5/{some_md5[:2]}/{some_md5[2:]}": b"DVCSEC",  # DVC's plaintext layout
    }
    tampered = bytearray((repo.storage / event.rel).read_bytes())
    tampered[-1] ^= 1
    bad[event.rel] = bytes(tampered)  # an edited audit event
    digest, index = build_index([StoredObject("ab/missing", 10, "0" * 64)])
    bad[index_storage_path(digest)] = index  # an index listing what is not stored
    for rel, data in bad.items():
        path = repo.storage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (repo.storage / "leak.csv").write_bytes(MARKER)

    problems = "\n".join(_survey(repo).problems)
    for rel in [*bad, "leak.csv"]:
        assert rel in problems, f"{rel} not reported:\n{problems}"
    assert "leak.csv: plaintext of the dataset found in it" in problems
    assert f"shows the DVC object id (MD5) {some_md5}" in problems
    assert f"{event.rel} (audit event)" in problems
    assert "lists ab/missing, not an encrypted object here" in problems


def test_readme_links_every_document_and_every_link_resolves() -> None:
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert [link for link in local if not (ROOT / link).exists()] == []
    docs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert [d for d in docs if d not in local] == [], "documents the README does not link"


def test_ci_runs_the_readmes_first_command_as_written() -> None:
    ci = ROOT / ".ci" / "run"
    if not ci.is_file():
        pytest.skip("a copy of the tests without .ci/ (the oldest-DVC run); the newest run checks")
    m = re.search(r"demo_cmd=\$\(sed -n '([^']+)' README\.md", ci.read_text(encoding="utf-8"))
    assert m is not None, ".ci/run no longer reads the demo command from README.md"
    found = subprocess.run(["sed", "-n", m.group(1), str(README)], text=True,
                           capture_output=True, check=True).stdout.splitlines()
    first = next(c for b in doc_blocks(README) for c in b.commands if "dvc-secure demo" in c)
    assert found[:1] == [first] and first in SKIPPED
