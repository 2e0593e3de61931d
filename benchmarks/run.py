#!/usr/bin/env python3
"""Plain DVC vs ``secure://``: paired wall time and peak RSS of ``dvc push`` and ``dvc pull``.

    python benchmarks/run.py [--scale full|ci|smoke] [--datasets A,B,C] [--repeat N] [--out FILE]

One repository per dataset with two remotes: ``storage`` (a plain local directory) and
``vault`` (``secure://`` over a second plain local directory). Each repetition pushes and
pulls through ``storage``, then through ``vault`` (interleaved pairs), with the real
``dvc`` CLI in subprocesses, each push into an emptied remote and each pull into an
emptied cache and workspace. See benchmarks/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
HERE = Path(__file__).resolve().parent
VARIANTS = {"plain": "storage", "secure": "vault"}  # variant -> DVC remote name
OPS = ("push", "pull")
RATIO_TARGETS = {"A": 1.10, "B": 1.20, "C": 1.10}  # secure/plain wall time, push and pull
RSS_TARGETS_MIB = {"A": 64.0}  # secure peak RSS may exceed plain by at most this much
# --guard (.ci/run, smoke scale): a CPU-time ratio above its ceiling is a regression. The
# ceilings sit well above what the smoke scale measures today (benchmarks/README.md), so
# only a real regression (an extra pass over the data, a per-object fsync) trips them.
GUARD_CPU_RATIO = {("A", "push"): 2.0, ("A", "pull"): 1.8, ("B", "push"): 2.0,
                   ("B", "pull"): 1.8, ("C", "push"): 2.0, ("C", "pull"): 1.8}


@dataclass(frozen=True)
class Dataset:
    name: str
    files: int
    file_size: int  # bytes

    @property
    def total(self) -> int:
        return self.files * self.file_size

    def describe(self) -> str:
        size = f"{self.file_size // MIB} MiB" if self.file_size >= MIB else f"{self.file_size // KIB} KiB"
        return f"{self.files:,} x {size}"


def _scale(a: tuple[int, int], b: tuple[int, int], c: tuple[int, int]) -> dict[str, Dataset]:
    return {n: Dataset(n, *spec) for n, spec in zip("ABC", (a, b, c), strict=True)}


SCALES = {
    "full": _scale((1, 2 * GIB), (20_000, 4 * KIB), (200, 5 * MIB)),
    "ci": _scale((1, 64 * MIB), (2_000, 4 * KIB), (20, 5 * MIB)),
    "smoke": _scale((1, 8 * MIB), (200, 4 * KIB), (5, 1 * MIB)),
}


@dataclass(frozen=True)
class Sample:
    seconds: float  # wall time
    cpu_seconds: float  # user + system time of the dvc process and its children
    rss_mib: float  # peak resident set size
    user_seconds: float = 0.0  # user time alone: steadier than user + system under disk contention


class BenchError(RuntimeError):
    pass


# --- subprocesses --------------------------------------------------------------------------


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a setup command; on failure raise with its output."""
    proc = subprocess.run(argv, cwd=cwd, env=env, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def measure(argv: list[str], cwd: Path, env: dict[str, str], log: Path,
            terminal: bool = True) -> Sample:
    """Wall time, CPU time and peak RSS (``wait4``'s ru_maxrss, KiB on Linux) of a command.

    ``terminal``: its stdout and stderr are a pseudo-terminal (drained into ``log``), as
    when a user types it, so DVC draws its progress bars as it does for them."""
    os.sync()  # write-back of the previous step must not land in this measurement
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        master = slave = -1
        if terminal:
            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=slave if terminal else out,
                                stderr=slave if terminal else subprocess.STDOUT)
        drain = None
        if terminal:
            os.close(slave)
            drain = threading.Thread(target=_drain, args=(master, out), daemon=True)
            drain.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if drain is not None:
            drain.join(timeout=10)
            os.close(master)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}; see {log}")
    return Sample(seconds=seconds, cpu_seconds=usage.ru_utime + usage.ru_stime,
                  rss_mib=usage.ru_maxrss / 1024, user_seconds=usage.ru_utime)


def _drain(master: int, out: Any) -> None:
    """Copy what the command writes to its terminal into the log, until it closes it."""
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the last writer closed the terminal
            return
        if not data:
            return
        out.write(data)


# --- one dataset ------------------------------------------------------------------------------


def write_random_files(ds: Dataset, target: Path) -> None:
    """Incompressible, pairwise distinct files (DVC would deduplicate equal ones)."""
    target.mkdir(parents=True)
    chunk = 16 * MIB
    for i in range(ds.files):
        with (target / f"{i:06d}.bin").open("wb") as f:
            left = ds.file_size
            while left:
                n = min(chunk, left)
                f.write(os.urandom(n))
                left -= n


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


class Bench:
    """One dataset measured the way a user runs it (benchmarks/README.md, "What is measured").

    Every round builds a fresh repository per variant: ``git init``, ``dvc init``, ``dvc
    remote add -d storage DIR`` and, for ``secure``, ``dvc-secure init --remote storage``
    (which makes ``vault`` = ``secure://storage`` the default remote), a ``git commit`` of
    ``.dvc`` (as the quick start does), then ``dvc add data`` (untimed). Timed: the whole ``dvc push`` process with default options, then,
    after deleting the cache and the data, the whole ``dvc pull`` process.
    """

    def __init__(self, ds: Dataset, root: Path, python: str, jobs: int | None,
                 env: dict[str, str], terminal: bool = True) -> None:
        self.ds = ds
        self.root = root
        self.template = root / "template"
        self.python = python
        self.jobs = jobs
        self.env = env
        self.log = root / "dvc.log"
        self.terminal = terminal
        self.round = 0
        script = Path(python).parent / "dvc"  # the console script a user types
        self.dvc_cmd = [str(script)] if script.exists() else [python, "-m", "dvc"]
        secure = Path(python).parent / "dvc-secure"
        self.secure_cmd = [str(secure)] if secure.exists() else [python, "-m", "dvc_secure.cli.main"]

    def dvc(self, *args: str) -> list[str]:
        return [*self.dvc_cmd, *args]

    def setup(self) -> None:
        write_random_files(self.ds, self.template)

    def _fresh_repo(self, variant: str) -> tuple[Path, Path, dict[str, str]]:
        """A new repository (and DVC site cache) with the data added, as a user has it
        before their first ``dvc push``."""
        self.round += 1
        base = self.root / f"round-{self.round:03d}-{variant}"
        repo, store = base / "repo", base / "remote"
        repo.mkdir(parents=True)
        store.mkdir()
        env = dict(self.env, DVC_SITE_CACHE_DIR=str(base / "site-cache"))
        run(["git", "init", "-q"], repo, env)
        run(self.dvc("init", "-q"), repo, env)
        run(self.dvc("remote", "add", "-d", "storage", str(store)), repo, env)
        if variant == "secure":
            run([*self.secure_cmd, "init", "--remote", "storage"], repo, env)
        # committed before the first push, as docs/quickstart.md does ("dvc-secure: init"):
        # a push then reads the keyring's history, as a user's does
        run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
             "add", ".dvc"], repo, env)
        run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
             "commit", "-q", "-m", f"{variant}: init"], repo, env)
        shutil.copytree(self.template, repo / "data")
        run(self.dvc("add", "-q", "data"), repo, env)
        return repo, store, env

    def once(self, variant: str) -> dict[str, Sample]:
        repo, store, env = self._fresh_repo(variant)
        jobs = ["-j", str(self.jobs)] if self.jobs else []
        push = measure(self.dvc("push", *jobs), repo, env, self.log, self.terminal)
        # the plugin's own area (remote index, audit events, upload records) is not DVC objects
        stored = len([p for p in files_under(store)
                      if p.relative_to(store).parts[0] != "dvc-secure"])
        if stored != self.ds.files + 1:  # the files and the directory listing
            raise BenchError(f"{self.ds.name} {variant}: push stored {stored} objects, "
                             f"expected {self.ds.files + 1}")
        shutil.rmtree(repo / ".dvc" / "cache")
        shutil.rmtree(repo / "data")
        pull = measure(self.dvc("pull", *jobs), repo, env, self.log, self.terminal)
        pulled = files_under(repo / "data")
        if len(pulled) != self.ds.files or sum(p.stat().st_size for p in pulled) != self.ds.total:
            raise BenchError(f"{self.ds.name} {variant}: pull restored {len(pulled)} files, "
                             f"expected {self.ds.files}")
        shutil.rmtree(repo.parent)
        return {"push": push, "pull": pull}


def measure_dataset(bench: Bench, repeat: int) -> dict[str, Any]:
    """Set up one dataset, then ``repeat`` interleaved (plain, secure) pairs."""
    ds = bench.ds
    print(f"{ds.name}: {ds.describe()} — generating and 'dvc add'", file=sys.stderr)
    bench.setup()
    load = os.getloadavg()[0]
    runs = []
    for i in range(repeat):
        pair = {}
        for variant in VARIANTS:
            pair[variant] = s = bench.once(variant)
            print(f"  {i + 1}/{repeat} {variant:6} " + "   ".join(
                f"{op} {s[op].seconds:7.2f} s (cpu {s[op].cpu_seconds:6.2f} s) "
                f"{s[op].rss_mib:5.0f} MiB" for op in OPS), file=sys.stderr)
        runs.append(pair)
    return {
        "shape": ds.describe(), "files": ds.files, "file_size": ds.file_size,
        "load1_before": load, "load1_after": os.getloadavg()[0],
        "summary": summarize(ds.name, runs),
        "runs": [{v: {op: asdict(s) for op, s in r.items()} for v, r in p.items()} for p in runs],
    }


def summarize(name: str, runs: list[dict[str, dict[str, Sample]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op in OPS:
        plain = [r["plain"][op] for r in runs]
        secure = [r["secure"][op] for r in runs]
        pairs = list(zip(plain, secure, strict=True))
        ratio = statistics.median(s.seconds / p.seconds for p, s in pairs)
        rss_plain = max(p.rss_mib for p in plain)
        rss_secure = max(s.rss_mib for s in secure)
        row: dict[str, Any] = {
            "plain_s": statistics.median(p.seconds for p in plain),
            "secure_s": statistics.median(s.seconds for s in secure),
            "ratio": ratio,
            "ratio_target": RATIO_TARGETS[name],
            "ratio_status": "PASS" if ratio <= RATIO_TARGETS[name] else "MISS",
            "plain_cpu_s": statistics.median(p.cpu_seconds for p in plain),
            "secure_cpu_s": statistics.median(s.cpu_seconds for s in secure),
            "cpu_ratio": statistics.median(s.cpu_seconds / p.cpu_seconds for p, s in pairs),
            "user_cpu_ratio": statistics.median(s.user_seconds / p.user_seconds for p, s in pairs),
            "rss_plain_mib": rss_plain,
            "rss_secure_mib": rss_secure,
            "rss_delta_mib": rss_secure - rss_plain,
        }
        if name in RSS_TARGETS_MIB:
            row["rss_target_delta_mib"] = RSS_TARGETS_MIB[name]
            ok = rss_secure - rss_plain <= RSS_TARGETS_MIB[name]
            row["rss_status"] = "PASS" if ok else "MISS"
        out[op] = row
    return out


# --- report -----------------------------------------------------------------------------------


def git_revision(path: Path) -> str | None:
    """``git describe`` of a source checkout (an editable install), else None."""
    if not (path / ".git").exists():
        return None
    proc = subprocess.run(["git", "-C", str(path), "describe", "--always", "--dirty"],
                          text=True, capture_output=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def machine_info(python: str, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                  if ln.startswith("model name")]
        cpu = models[0] if models else cpu
    probe = ("import importlib.metadata as m, json, sys; print(json.dumps({'python': "
             "sys.version.split()[0], **{p: m.version(p) for p in ('dvc', 'dvc-data', "
             "'dvc-objects', 'dvc-secure', 'cryptography')}}));"
             "import dvc_secure; print(dvc_secure.__file__)")
    out = run([python, "-c", probe], workdir, env).splitlines()
    versions = json.loads(out[0])
    plugin = Path(out[1]).parent.parent
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
        **versions,
        "dvc_secure_source": str(plugin),
        "dvc_secure_revision": git_revision(plugin),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| data | op | plain s | secure s | secure/plain | target | | CPU secure/plain "
        "| user CPU s/p | plain RSS MiB | secure RSS MiB | Δ MiB | RSS target | |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, ds in results["datasets"].items():
        for op in OPS:
            r = ds["summary"][op]
            rss_target = r.get("rss_target_delta_mib")
            lines.append(
                f"| {name} ({ds['shape']}) | {op} | {r['plain_s']:.2f} | {r['secure_s']:.2f} "
                f"| {r['ratio']:.2f} | ≤ {r['ratio_target']:.2f} | {r['ratio_status']} "
                f"| {r['cpu_ratio']:.2f} | {r['user_cpu_ratio']:.2f} "
                f"| {r['rss_plain_mib']:.0f} | {r['rss_secure_mib']:.0f} "
                f"| {r['rss_delta_mib']:+.0f} "
                f"| {f'≤ +{rss_target:.0f}' if rss_target is not None else '-'} "
                f"| {r.get('rss_status', '')} |"
            )
    m = results["machine"]
    lines.append("")
    lines.append(f"{results['scale']} scale, {results['repeat']} paired repetitions, "
                 f"-j {results['jobs'] or 'default'}; {m['nproc']} x {m['cpu_model']}, Python {m['python']}, "
                 f"DVC {m['dvc']}, dvc-secure {m['dvc-secure']}")
    return "\n".join(lines)


def base_env(work: Path, pythonpath: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DVC_", "GIT_")) and k != "PYTHONDONTWRITEBYTECODE"}
    home = work / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        DVC_SECURE_IDENTITY_FILE=str(work / "identity.txt"),
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(work / "site-cache"),
        DVC_GLOBAL_CONFIG_DIR=str(home / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(home / "dvc-system"),
        GIT_CONFIG_NOSYSTEM="1",
        # bytecode as after a pip install, without writing into the installed packages
        PYTHONPYCACHEPREFIX=str(work / "pycache"),
    )
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--scale", choices=sorted(SCALES), default="ci",
                   help="dataset sizes: full (A = 2 GiB, B = 20,000 x 4 KiB, C = 200 x 5 MiB), "
                   "ci (< 3 min on 2 cores) or smoke (seconds); default ci")
    p.add_argument("--datasets", default="A,B,C", help="comma-separated subset of A,B,C")
    p.add_argument("--repeat", type=int, default=3, help="paired repetitions (default 3)")
    p.add_argument("--jobs", type=int, default=None,
                   help="pass -j J to dvc push/pull (default: none, DVC's own default as a "
                   "user runs it)")
    p.add_argument("--no-terminal", action="store_true",
                   help="run dvc with output to the log file instead of a pseudo-terminal (no "
                   "progress bars; the default is a terminal, as a user has)")
    p.add_argument("--guard", action="store_true",
                   help="exit 3 when a CPU-time ratio exceeds its guard ceiling (GUARD_CPU_RATIO: "
                   "the regression tripwire .ci/run runs at smoke scale)")
    p.add_argument("--out", type=Path, help="JSON results (default benchmarks/results/latest-<scale>.json)")
    p.add_argument("--workdir", type=Path,
                   help="parent of the temporary work directory (default: the system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter with dvc and dvc-secure installed (default: this one)")
    p.add_argument("--pythonpath", metavar="DIR",
                   help="put DIR first on the dvc processes' PYTHONPATH, e.g. to measure "
                   "another dvc-secure revision exported there (git archive REV dvc_secure "
                   ".dvc-plugin.toml | tar -x -C DIR)")
    args = p.parse_args(argv)
    args.datasets = [d.strip().upper() for d in args.datasets.split(",") if d.strip()]
    unknown = set(args.datasets) - set("ABC")
    if unknown or not args.datasets:
        p.error(f"--datasets takes a subset of A,B,C (got {','.join(sorted(unknown)) or 'none'})")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def guard_failures(results: dict[str, Any]) -> list[str]:
    """The CPU-time ratios above their ``GUARD_CPU_RATIO`` ceiling, one line each."""
    return [f"{name} {op}: CPU ratio {ds['summary'][op]['cpu_ratio']:.2f} > "
            f"{GUARD_CPU_RATIO[(name, op)]:.2f}"
            for name, ds in results["datasets"].items() for op in OPS
            if ds["summary"][op]["cpu_ratio"] > GUARD_CPU_RATIO[(name, op)]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    datasets = [SCALES[args.scale][n] for n in args.datasets]
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dvc-secure-bench-", dir=args.workdir))
    # template + workspace + cache + one remote
    need = 4 * max(ds.total for ds in datasets) + 256 * MIB
    free = shutil.disk_usage(work).free
    if free < need:
        shutil.rmtree(work)
        print(f"need {need / GIB:.1f} GiB free under {work.parent}, have {free / GIB:.1f} GiB; "
              "use --workdir", file=sys.stderr)
        return 2
    env = base_env(work, args.pythonpath)
    results: dict[str, Any] = {
        "scale": args.scale, "repeat": args.repeat, "jobs": args.jobs,
        "terminal": not args.no_terminal,
        "method": "user: fresh git + DVC repo per round, dvc-secure init defaults, whole "
                  "dvc push / dvc pull processes, default options, plain and secure "
                  "interleaved, median of paired ratios",
        "machine": machine_info(args.python, work, env),
        "targets": {"ratio": RATIO_TARGETS, "rss_delta_mib": RSS_TARGETS_MIB},
        "datasets": {},
    }
    try:
        run([args.python, "-m", "dvc_secure.cli.main", "keygen"], work, env)
        print("warm-up (bytecode, page cache)", file=sys.stderr)
        warm = Bench(Dataset("warm-up", 2, 64 * KIB), work / "warm-up", args.python, args.jobs, env,
                     not args.no_terminal)
        warm.setup()
        for variant in VARIANTS:
            warm.once(variant)
        for ds in datasets:
            bench = Bench(ds, work / ds.name, args.python, args.jobs, env, not args.no_terminal)
            results["datasets"][ds.name] = measure_dataset(bench, args.repeat)
            if not args.keep:
                shutil.rmtree(bench.root)
    except BenchError as exc:
        print(f"benchmark failed: {exc}\nwork directory kept: {work}", file=sys.stderr)
        return 1
    if args.keep:
        print(f"work directory kept: {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    out = args.out or HERE / "results" / f"latest-{args.scale}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nJSON: {out}", file=sys.stderr)
    if args.guard:
        over = guard_failures(results)
        if over:
            print("performance regression (benchmarks/README.md, 'Guard'):\n  "
                  + "\n  ".join(over), file=sys.stderr)
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
