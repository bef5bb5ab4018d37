"""Mutation testing of the project's own tests: ``make mutate`` or
``python -m aimcflow.flows.mutate [--only ID,...] [--list] [--jobs N] [--network CONFIG]``.

Each mutant of :mod:`aimcflow.flows.mutants` (a realistic bug: exact text edits of the
RTL, a golden model, both at once, or the analog converter model) is applied to a scratch
copy of the source tree under ``out/mutate/work/`` -- never to the checkout itself -- and
the tests of its block run against that copy (``PYTHONPATH`` puts the copy's ``aimcflow``
ahead of the editable install).  The fast tier (golden-model and Amaranth-simulator tests,
seconds) runs first, stopping at the first failure; the cosim tier (Verilator builds,
minutes) runs only for mutants the fast tier missed (not for declared equivalents).  After the run the file is restored
byte for byte and checked.

``out/mutate/results.json``: ``mutants`` (count), ``equivalent`` (the mutants declared
equivalent, each with its argument), ``killed``, ``score`` = killed / (mutants -
equivalent), ``survivors``, ``wall_s``, and ``per_mutant``: id, block, kind, files,
description, status, the tier and tests that killed it, seconds.

``--network CONFIG`` measures what a network run alone notices instead: for every mutant
marked ``network`` it runs ``aimcflow run --config CONFIG --images N --levels analog-rtl``
on the mutated copy (level 4 compares the Verilated periphery with the golden models on
every activation) and counts the mutant killed when the run exits non-zero; results go to
``out/mutate/network-<CONFIG>.json``.

Verilator builds and trained models go to aimcflow's one cache
(:func:`aimcflow.models.io.cache_dir`: ``$AIMCFLOW_CACHE`` or the checkout's ``.cache``);
builds are keyed by the generated Verilog, so unmutated designs are built once.  ``--tree DIR`` mutates another checkout (e.g. an older commit, for a before/after
comparison) with this catalogue.
Bounds: ``--jobs`` 1..8, ``--images`` 1..360 (the digits test split).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aimcflow.flows.io import write_json_atomic
from aimcflow.flows.mutants import CATALOGUE, TIERS, Mutant
from aimcflow.models.config import load_config
from aimcflow.models.errors import UserInputError
from aimcflow.models.io import cache_dir

SRC_DIRS = ("rtl", "models", "cosim", "flows", "configs")
"""Package directories of the checkout; each is the ``aimcflow.<name>`` subpackage."""
MAX_JOBS = 8
MAX_IMAGES = 360
FAST_TIMEOUT_S = 300  # per test (pytest-timeout); a hang is a kill, reported as such
COSIM_TIMEOUT_S = 1200
NETWORK_TIMEOUT_S = 1800


class StaleMutant(UserInputError):
    """A catalogue entry whose original snippet is not (exactly once) in its file."""


def source_root(tree: str | Path | None = None) -> Path:
    """The source checkout to mutate: ``tree``, by default the one this package runs from
    (mutation needs its tests)."""
    root = Path(tree).resolve() if tree else Path(__file__).resolve().parent.parent
    if not ((root / "pyproject.toml").is_file() and (root / "tests").is_dir()):
        raise UserInputError(
            f"mutation testing needs a source checkout with pyproject.toml and tests/; {root} "
            "has none (run it from a clone: make mutate, or name one with --tree)"
        )
    return root


def repo_path(root: Path, file: str) -> Path:
    """Where ``file`` (repository-relative, e.g. ``rtl/nmpu.py``) lives under ``root``."""
    return root / file


def stale_entries(root: Path, catalogue: tuple[Mutant, ...] = CATALOGUE) -> list[str]:
    """Every problem of the catalogue against the tree at ``root``: a missing file, an
    original snippet found zero or several times, a no-op edit, a duplicate id or an
    unknown block.  Empty when every mutant applies."""
    problems = []
    seen: set[str] = set()
    for m in catalogue:
        if m.id in seen:
            problems.append(f"{m.id}: duplicate id")
        seen.add(m.id)
        if m.block not in TIERS:
            problems.append(f"{m.id}: unknown block {m.block!r}")
        texts: dict[str, str] = {}
        for e in m.edits:
            path = repo_path(root, e.file)
            if e.file not in texts:
                if not path.is_file():
                    problems.append(f"{m.id}: {e.file} does not exist")
                    continue
                texts[e.file] = path.read_text()
            n = texts[e.file].count(e.original)
            if n != 1:
                problems.append(f"{m.id}: {e.file}: original snippet found {n} times, not once")
            elif e.original == e.replacement:
                problems.append(f"{m.id}: {e.file}: replacement equals the original")
            else:
                texts[e.file] = texts[e.file].replace(e.original, e.replacement)
    return problems


class Scratch:
    """A copy of the checkout's packages and tests laid out as an importable ``aimcflow``
    namespace: ``<dir>/aimcflow/{rtl,models,...}``, ``<dir>/tests``, ``<dir>/pyproject.toml``."""

    def __init__(self, root: Path, dest: Path) -> None:
        dest = self.dir = Path(dest).resolve()  # subprocesses run with cwd = dest
        if dest.exists():
            shutil.rmtree(dest)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
        for d in SRC_DIRS:
            shutil.copytree(root / d, dest / "aimcflow" / d, ignore=ignore)
        shutil.copytree(root / "tests", dest / "tests", ignore=ignore)
        shutil.copy2(root / "pyproject.toml", dest / "pyproject.toml")

    def path(self, file: str) -> Path:
        head = file.split("/", 1)[0]
        return self.dir / "aimcflow" / file if head in SRC_DIRS else self.dir / file

    @contextmanager
    def applied(self, mutant: Mutant) -> Iterator[None]:
        """Apply every edit of ``mutant``; restore the original bytes afterwards (also on
        error) and check they are back."""
        saved: dict[Path, bytes] = {}
        try:
            for e in mutant.edits:
                p = self.path(e.file)
                if p not in saved:
                    saved[p] = p.read_bytes()
                text = p.read_text()
                if text.count(e.original) != 1:
                    raise StaleMutant(
                        f"mutant {mutant.id}: {e.file}: the original snippet is not in the "
                        "file exactly once (the source moved: update flows/mutants.py)"
                    )
                p.write_text(text.replace(e.original, e.replacement))
            yield
        finally:
            for p, data in saved.items():
                p.write_bytes(data)
                if p.read_bytes() != data:
                    raise RuntimeError(f"could not restore {p}")

    def env(self, cache: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.dir), str(self.dir / "tests")])
        # no .pyc: a restored file of the mutant's size and mtime second would reuse its code
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["AIMCFLOW_CACHE"] = str(cache)
        return env


@dataclass
class TierResult:
    killed: bool
    tests: list[str]  # failing test ids (or the reason for a non-test failure)
    seconds: float
    returncode: int


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``cmd`` in its own process group; the group dies with us or on timeout."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return -9, out + f"\n[mutate] killed after {timeout:.0f} s\n"
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def _failing_tests(junit: Path, root: Path) -> list[str]:
    """Node ids (``tests/test_x.py::[Class::]name``) of the failed or erroring test cases
    of a JUnit report (whose class names are dotted module paths)."""
    if not junit.is_file():
        return []
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is None and case.find("error") is None:
            continue
        parts = case.get("classname", "").split(".")
        for k in range(len(parts), 0, -1):  # the longest dotted prefix that is a file
            if (root / Path(*parts[:k])).with_suffix(".py").is_file():
                parts = ["/".join(parts[:k]) + ".py", *parts[k:]]
                break
        out.append("::".join([*parts, case.get("name", "")]))
    return out


def run_tier(
    scratch: Scratch, env: dict[str, str], files: tuple[str, ...], cosim: bool
) -> TierResult:
    """Run ``files`` of the scratch tree (fast: ``not cosim``; cosim: ``cosim``; never
    ``slow``), stopping at the first failure."""
    junit = scratch.dir / "junit.xml"
    junit.unlink(missing_ok=True)
    marker = "cosim and not slow" if cosim else "not slow and not cosim"
    timeout = COSIM_TIMEOUT_S if cosim else FAST_TIMEOUT_S
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-p", "no:xdist", "-m", marker, f"--timeout={timeout}",
           f"--junitxml={junit}", "--rootdir", str(scratch.dir),
           *files]  # fmt: skip
    t0 = time.perf_counter()
    rc, out = _run(cmd, scratch.dir, env, timeout * 3)
    dt = time.perf_counter() - t0
    tests = _failing_tests(junit, scratch.dir)
    if rc == 0 or rc == 5:  # 5: no test selected (a block without cosim tests)
        return TierResult(False, [], dt, rc)
    if rc in (3, 4):  # pytest's internal / usage error: the harness is wrong, not the tests
        tail = "\n".join(out.strip().splitlines()[-5:])
        raise RuntimeError(f"pytest exit {rc} on {' '.join(files)}:\n{tail}")
    if not tests:
        tail = out.strip().splitlines()[-1:] or ["?"]
        tests = [f"pytest exit {rc}: {tail[0][:200]}"]
    return TierResult(True, tests, dt, rc)


def mutate_one(m: Mutant, scratch: Scratch, env: dict[str, str], cosim: bool) -> dict:
    tier = TIERS[m.block]
    t0 = time.perf_counter()
    rec = {
        "id": m.id,
        "block": m.block,
        "kind": m.kind,
        "files": sorted({e.file for e in m.edits}),
        "what": m.what,
        "network": m.network,
        "equivalent": m.equivalent,
    }
    with scratch.applied(m):
        fast = run_tier(scratch, env, tier.fast, cosim=False)
        rec["fast_s"] = round(fast.seconds, 1)
        result, where = fast, "fast"
        # a declared equivalent gets the fast tier only (its survival there is the check
        # of the argument; the cosim tier would spend builds on a mutant that cannot die)
        if not fast.killed and cosim and tier.cosim and not m.equivalent:
            result, where = run_tier(scratch, env, tier.cosim, cosim=True), "cosim"
            rec["cosim_s"] = round(result.seconds, 1)
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    rec["killed_by"] = result.tests
    rec["tier"] = where if result.killed else None
    if m.equivalent:
        rec["status"] = "equivalent-but-killed" if result.killed else "equivalent"
    else:
        rec["status"] = "killed" if result.killed else "survived"
    return rec


def network_one(m: Mutant, scratch: Scratch, env: dict[str, str], config: str, images: int) -> dict:
    out = scratch.dir / "run-out"
    cmd = [sys.executable, "-m", "aimcflow.flows.cli", "run", "--config", config,
           "--images", str(images), "--levels", "analog-rtl", "--out", str(out), "--force"]  # fmt: skip
    t0 = time.perf_counter()
    with scratch.applied(m):
        rc, text = _run(cmd, scratch.dir, env, NETWORK_TIMEOUT_S)
    # level 4's comparison line (mismatches), level 3's property checks and coverage goals
    keys = ("mismatch", "error", "violation", "coverage goal", "breaks")
    lines = [ln.strip() for ln in text.splitlines() if any(k in ln.lower() for k in keys)]
    return {
        "id": m.id,
        "kind": m.kind,
        "what": m.what,
        "equivalent": m.equivalent,
        "killed": rc != 0,
        "returncode": rc,
        "evidence": lines[:6],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def summarize(records: list[dict], wall_s: float) -> dict:
    equivalent = [r for r in records if r["equivalent"]]
    live = [r for r in records if not r["equivalent"]]
    killed = [r for r in live if r["status"] == "killed"]
    return {
        "mutants": len(records),
        "equivalent": [{"id": r["id"], "argument": r["equivalent"]} for r in equivalent],
        "killed": len(killed),
        "score": round(len(killed) / len(live), 4) if live else None,
        "survivors": [r["id"] for r in live if r["status"] != "killed"],
        "equivalent_but_killed": [r["id"] for r in equivalent if r["status"] != "equivalent"],
        "wall_s": round(wall_s, 1),
        "per_mutant": records,
    }


def _select(only: str | None, network: bool) -> list[Mutant]:
    chosen = list(CATALOGUE)
    if only:
        ids = [s.strip() for s in only.split(",") if s.strip()]
        known = {m.id for m in CATALOGUE}
        bad = [i for i in ids if i not in known]
        if bad:
            raise UserInputError(
                f"--only: unknown mutant {bad[0]!r}; see --list for the {len(known)} ids"
            )
        chosen = [m for m in CATALOGUE if m.id in ids]
    if network:
        chosen = [m for m in chosen if m.network]
    return chosen


def _bounded(name: str, lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} = {v}; allowed: {lo} .. {hi}")
        return v

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aimcflow.flows.mutate",
        description="Mutation testing: apply each catalogued bug to a scratch copy of the "
        "tree and check that the tests kill it (results in out/mutate/results.json).",
    )
    p.add_argument("--only", metavar="ID[,ID...]", help="run only these mutants")
    p.add_argument("--list", action="store_true", help="print the catalogue and exit")
    p.add_argument("--jobs", type=_bounded("--jobs", 1, MAX_JOBS), default=2,
                   help=f"mutants tested in parallel, 1..{MAX_JOBS} (default 2)")  # fmt: skip
    p.add_argument("--no-cosim", action="store_true", help="fast tier only")
    p.add_argument("--network", metavar="CONFIG",
                   help="instead: does `aimcflow run --config CONFIG` alone kill the network "
                   "mutants?")  # fmt: skip
    p.add_argument("--images", type=_bounded("--images", 1, MAX_IMAGES), default=20,
                   help=f"images per network run, 1..{MAX_IMAGES} (default 20)")  # fmt: skip
    p.add_argument("--tree", metavar="DIR",
                   help="source checkout to mutate (default: this package's own), e.g. an "
                   "older commit's worktree for a before/after comparison")  # fmt: skip
    p.add_argument("--out", default="out/mutate", metavar="DIR",
                   help="results directory (default out/mutate)")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return _main(args)
    except UserInputError as exc:
        print(f"mutate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mutate: interrupted", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    chosen = _select(args.only, bool(args.network))
    if args.list:
        for m in chosen:
            eq = "  [equivalent]" if m.equivalent else ""
            files = ",".join(sorted({e.file for e in m.edits}))
            print(f"{m.id:32s} {m.kind:6s} {files:40s} {m.what}{eq}")
        return 0
    root = source_root(args.tree)
    problems = stale_entries(root)
    if problems:
        raise StaleMutant("stale mutation catalogue:\n  " + "\n  ".join(problems))
    if args.network:
        load_config(args.network)  # a bad config name fails here, before any work
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    jobs = min(args.jobs, max(1, len(chosen)))
    scratches = [Scratch(root, work / f"tree{j}") for j in range(jobs)]
    free = list(scratches)
    lock = threading.Lock()
    # Verilator builds are keyed by the Verilog they build, so a shared cache is safe
    cache = cache_dir().resolve()

    def task(m: Mutant) -> dict:
        with lock:
            s = free.pop()
        try:
            env = s.env(cache)
            if args.network:
                r = network_one(m, s, env, args.network, args.images)
                print(
                    f"{m.id:32s} {'killed' if r['killed'] else 'missed':9s} {r['seconds']:7.1f} s",
                    flush=True,
                )
            else:
                r = mutate_one(m, s, env, cosim=not args.no_cosim)
                by = r["killed_by"][0] if r["killed_by"] else "-"
                print(f"{m.id:32s} {r['status']:9s} {r['tier'] or '-':5s} {r['seconds']:7.1f} s  {by}", flush=True)  # fmt: skip
            return r
        finally:
            with lock:
                free.append(s)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        records = list(pool.map(task, chosen))
    wall = time.perf_counter() - t0
    if args.network:
        live = [r for r in records if not r["equivalent"]]
        killed = sum(r["killed"] for r in live)
        summary = {
            "config": args.network,
            "images": args.images,
            "network_mutants": len(live),
            "killed": killed,
            "kill_rate": round(killed / len(live), 4) if live else None,
            "wall_s": round(wall, 1),
            "per_mutant": records,
        }
        path = out / f"network-{Path(args.network).stem}.json"
        print(f"network run ({args.network}, {args.images} images) killed {killed} of "
              f"{len(live)} network mutants in {wall:.0f} s -> {path}")  # fmt: skip
    else:
        summary = summarize(records, wall)
        path = out / "results.json"
        score = summary["score"]
        print(f"{summary['killed']} of {len(records) - len(summary['equivalent'])} "
              f"non-equivalent mutants killed (score {100 * (score or 0):.1f} %), "
              f"{len(summary['equivalent'])} equivalent, {wall:.0f} s -> {path}")  # fmt: skip
        if summary["survivors"]:
            print("survivors: " + ", ".join(summary["survivors"]))
    write_json_atomic(path, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
