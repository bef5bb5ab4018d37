"""cocotb bench of the SFU (``rtl/sfu.py`` and its units) against its golden model
``models/periphery/sfu.py``, and its Python door.

Python side (pytest, ``aimcflow vectors sfu``, the Amaranth unit tests):

* :class:`Job`: one op with its registers and operands; :meth:`Job.expected` calls the
  golden model.
* :func:`input_beats`, :func:`load_beats`, :func:`decode_outputs`: the stream protocol of
  the ``rtl/sfu.py`` module docstring.  matmul ``a`` (M,K) x ``b`` (K,N) is streamed as
  lane-wise MACs: for each row m and column group, K beats with ``a[m,k]`` broadcast to
  every lane and ``b[k, group]`` in the lanes.
* :func:`random_job`: constrained-random jobs with corners (rails, zero rows, L not a
  multiple of lanes, L = 1, saturating multipliers).

cocotb side:

* ``random_jobs``: jobs of random ops until ``vectors`` vectors (one output row each)
  matched; random valid gaps on ``i``/``load``, random backpressure on ``o``, a bound on
  cycles without progress, one job cut by a reset mid-stream (its delivered prefix
  checked, then rerun).
* ``file_vectors``: one job from an ``.npz`` (``aimcflow vectors sfu``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import cocotb
import numpy as np
from aimcflow.cosim.benches.stream_unit import UnitTB
from aimcflow.cosim.runner import build_component, load_params, save_result
from aimcflow.cosim.streams import Scoreboard
from aimcflow.models.periphery import sfu as golden
from aimcflow.models.periphery.fixedpoint import signed_range
from aimcflow.rtl.sfu import REG_LEN, REG_MULT, REG_OP, REG_SHIFT, REG_WIDE, Sfu, SfuRtlParams

MODULE = "aimcflow.cosim.benches.sfu"
TOPLEVEL = "aimcflow_sfu"
NO_PROGRESS_CYCLES = 2000
"""Cycles the bench waits without any beat transferred before failing (a hang)."""


def bench_params(rtl: SfuRtlParams, gp: golden.SfuParams, **kw: Any) -> dict[str, Any]:
    return {"rtl": dataclasses.asdict(rtl), "golden": dataclasses.asdict(gp), **kw}


def _params(p: dict[str, Any]) -> tuple[SfuRtlParams, golden.SfuParams]:
    return SfuRtlParams(**p["rtl"]), golden.SfuParams(**p["golden"])


@dataclass
class Job:
    """One op: ``x`` (V,L) rows (matmul: ``a`` (M,K)), ``b`` (K,N) for matmul only."""

    op: str
    x: np.ndarray
    gp: golden.SfuParams
    b: np.ndarray | None = None
    mult: int = 1
    shift: int = 0
    wide: bool = False

    @property
    def rows(self) -> int:
        """Output rows (vectors) of the job."""
        return self.x.shape[0]

    @property
    def length(self) -> int:
        """The LEN register: K (matmul) or the row length."""
        return self.x.shape[1]

    @property
    def cols(self) -> int:
        """Output columns: N (matmul) or the row length."""
        return self.b.shape[1] if self.op == "matmul" else self.x.shape[1]

    def expected(self) -> np.ndarray:
        g, x = self.gp, self.x
        if self.op == "matmul":
            return golden.matmul(x, self.b, self.mult, self.shift, g, self.wide)
        if self.op == "softmax":
            return golden.softmax(x, g)
        if self.op == "layernorm":
            return golden.layernorm(x, self.mult, self.shift, g)
        return golden.gelu(x, g)


def groups(n: int, lanes: int) -> int:
    return -(-n // lanes)


def _pad(x: np.ndarray, lanes: int) -> np.ndarray:
    """(..., n) -> (..., G, lanes), zero-padded."""
    n = x.shape[-1]
    G = groups(n, lanes)
    pad = [(0, 0)] * (x.ndim - 1) + [(0, G * lanes - n)]
    return np.pad(x, pad).reshape(*x.shape[:-1], G, lanes)


def input_beats(job: Job, lanes: int) -> dict[str, np.ndarray]:
    """Beat fields ``a``, ``b`` (beats, lanes) in stream order."""
    if job.op == "matmul":
        M, K = job.x.shape
        bgk = np.transpose(_pad(job.b, lanes), (1, 0, 2))  # (K, NG, lanes) -> (NG, K, lanes)
        NG = bgk.shape[0]
        b = np.broadcast_to(bgk[None], (M, NG, K, lanes)).reshape(-1, lanes)
        a = np.broadcast_to(job.x[:, None, :, None], (M, NG, K, lanes)).reshape(-1, lanes)
        return {"a": np.ascontiguousarray(a), "b": np.ascontiguousarray(b)}
    a = _pad(job.x, lanes).reshape(-1, lanes)
    return {"a": a, "b": np.zeros_like(a)}


def output_beats(job: Job, lanes: int) -> int:
    return job.rows * groups(job.cols, lanes)


def load_beats(job: Job) -> list[dict[str, int]]:
    """Register writes for a job (OP, LEN, MULT, SHIFT, WIDE)."""
    regs = [
        (REG_OP, golden.OPS.index(job.op)),
        (REG_LEN, job.length),
        (REG_MULT, job.mult),
        (REG_SHIFT, job.shift),
        (REG_WIDE, int(job.wide)),
    ]
    return [{"reg": r, "value": int(v)} for r, v in regs]


def decode_outputs(fields: dict[str, np.ndarray], job: Job, lanes: int, rows: int | None = None):
    """Output beats -> ``y`` (rows, cols) and ``last`` (rows, G)."""
    rows = job.rows if rows is None else rows
    G = groups(job.cols, lanes)
    y = np.asarray(fields["y"]).reshape(rows, G * lanes)[:, : job.cols]
    return y, np.asarray(fields["last"]).reshape(rows, G)


def expected_last(job: Job, lanes: int, rows: int) -> np.ndarray:
    G = groups(job.cols, lanes)
    last = np.zeros((rows, G), np.int64)
    last[:, -1] = 1
    if job.op == "matmul":
        last[:] = 1
    return last


def _corner_ints(rng: np.random.Generator, bits: int, size, p_corner: float = 0.15) -> np.ndarray:
    """Signed ``bits`` values: log-uniform magnitudes with ``p_corner`` min/max/0/+-1."""
    lo, hi = signed_range(bits)
    k = rng.integers(0, bits, size=size)
    mag = (rng.random(size) * np.left_shift(np.int64(1), k)).astype(np.int64)
    v = np.where(rng.random(size) < 0.5, -mag, mag)
    corners = np.array([lo, hi, 0, 1, -1], np.int64)
    v = np.where(rng.random(size) < p_corner, corners[rng.integers(0, 5, size=size)], v)
    return np.clip(v, lo, hi)


def ln_requant(out_frac: int, gp: golden.SfuParams, gain: float = 1.0) -> tuple[int, int]:
    """``(mult, shift)`` with ``mult / 2**shift ~= gain 2**(out_frac - ln_frac)`` (the
    layernorm output in LSB ``2**-out_frac``), ``mult`` using ``mult_bits - 1`` bits."""
    target = gain * 2.0 ** (out_frac - gp.ln_frac)
    shift = int(np.floor(gp.mult_bits - 2 - np.log2(target)))
    shift = int(np.clip(shift, 0, gp.shift_max))
    return int(min(round(target * 2**shift), (1 << (gp.mult_bits - 1)) - 1)), shift


def random_job(
    rng: np.random.Generator,
    gp: golden.SfuParams,
    V: int,
    op: str | None = None,
    L: int | None = None,
) -> Job:
    """A constrained-random job of ``V`` output rows."""
    op = op or str(rng.choice(golden.OPS))
    if op == "matmul":
        K = L or int(rng.integers(1, gp.k_max, endpoint=True))
        N = int(rng.integers(1, 3 * gp.lanes, endpoint=True))
        a = _corner_ints(rng, gp.in_bits, (V, K))
        b = _corner_ints(rng, gp.in_bits, (K, N))
        wide = bool(rng.integers(0, 2))
        n = gp.wide_bits if wide else gp.out_bits
        # uniform over the shifts that keep some of acc * mult in range: the small ones
        # saturate, the large ones round most results to 0 or -1
        shift = int(
            rng.integers(0, min(gp.acc_bits + gp.mult_bits - n, gp.shift_max), endpoint=True)
        )
        mult = int(_corner_ints(rng, gp.mult_bits, (), 0.1))
        return Job(op, a, gp, b=b, mult=mult, shift=shift, wide=wide)
    lmax = gp.seq_max if op == "softmax" else (gp.width_max if op == "layernorm" else gp.k_max)
    L = L or int(rng.integers(1, lmax, endpoint=True))
    if op == "gelu":
        return Job(op, _corner_ints(rng, gp.in_bits, (V, L), 0.1), gp)
    # rows with a random per-row spread so small and large variances both occur
    spread = rng.integers(0, gp.wide_bits, size=(V, 1))
    base = rng.integers(*signed_range(gp.wide_bits), size=(V, 1), endpoint=True)
    noise = (rng.standard_normal((V, L)) * np.left_shift(1, spread)).astype(np.int64)
    x = np.clip(base + noise, *signed_range(gp.wide_bits))
    x[rng.random(V) < 0.03] = 0  # all-equal rows
    if op == "softmax":
        return Job(op, x, gp)
    mult, shift = ln_requant(int(rng.integers(2, gp.out_bits - 2, endpoint=True)), gp)
    if rng.random() < 0.1:
        mult = int(_corner_ints(rng, gp.mult_bits, (), 0.5))
    return Job(op, x, gp, mult=mult, shift=shift)


def build(rtl: SfuRtlParams, toplevel: str = TOPLEVEL, sim: str = "verilator"):
    """The cached Verilator (or Icarus) build of the SFU with these parameters."""
    return build_component(Sfu(rtl), toplevel, name=f"sfu-l{rtl.lanes}", sim=sim)


def _coverage(job: Job, exp: np.ndarray) -> dict[str, int]:
    """Corner counts: saturated outputs and all-equal rows (layernorm/softmax)."""
    g = job.gp
    bits = g.in_bits if job.op == "gelu" else (g.wide_bits if job.wide else g.out_bits)
    lo, hi = signed_range(bits)
    cov = {
        f"{job.op}_rows": job.rows,
        f"{job.op}_saturated": int(((exp == lo) | (exp == hi)).sum()),
    }
    if job.op in ("softmax", "layernorm"):
        cov[f"{job.op}_equal_rows"] = int((job.x == job.x[:, :1]).all(axis=1).sum())
    return cov


# ---------------------------------------------------------------- cocotb side
class SfuTB(UnitTB):
    """Clock, reset, the ``i``/``load`` sources, the ``o`` sink (ports ``prefix + name``
    inside a bigger toplevel, as in ``network_top``), and a progress monitor: any
    ``NO_PROGRESS_CYCLES`` cycles without a beat on ``i`` or ``o`` while work is pending
    fail the run (a hang, not a slow design)."""

    def __init__(
        self, dut, rtl: SfuRtlParams, seed: int, p_valid: float, p_ready: float, prefix: str = ""
    ):
        super().__init__(dut, Sfu(rtl), seed, p_valid, p_ready, prefix)
        self.rtl = rtl
        self._mark = (0, 0, 0)

    def input_fields(self, job: Job) -> dict[str, np.ndarray]:
        return input_beats(job, self.rtl.lanes)

    def load_fields(self, job: Job) -> list[dict[str, int]]:
        return load_beats(job)

    def vectors(self, job: Job) -> int:
        return job.rows

    def beats_per_vector(self, job: Job) -> int:
        return groups(job.cols, self.rtl.lanes)

    def _watch(self) -> None:
        mark = (self.src.sent, len(self.snk.words), self.cycle)
        if mark[:2] != self._mark[:2]:
            self._mark = mark
        elif self.cycle - self._mark[2] > NO_PROGRESS_CYCLES:
            raise AssertionError(
                f"no progress for {NO_PROGRESS_CYCLES} cycles: {self.src.sent} beats in, "
                f"{len(self.snk.words)} out"
            )

    async def program(self, job: Job) -> None:
        self.promise.enabled = False  # the OP register may switch units while loading
        await super().program(job)

    async def stream(self, job: Job, stop_after: int | None = None) -> int:
        """Send the job's beats; return cycles until all (or ``stop_after``) output
        beats arrived.  The sink's word list is cleared first.  No cycle bound: the
        progress monitor fails a hang instead."""
        self.snk.words.clear()
        # matmul and GELU move as one pipeline (i.ready = ~o.valid | o.ready); the row
        # ops take a row, then compute, then send it (rtl/sfu.py): no such promise
        self.promise.enabled = job.op in ("matmul", "gelu")
        self.src.send(self.codec["i"].pack(self.input_fields(job)))
        want = output_beats(job, self.rtl.lanes) if stop_after is None else stop_after
        self._mark = (self.src.sent, 0, self.cycle)
        return await self.run(
            lambda: len(self.snk.words) >= want, max_cycles=1 << 40, hooks=(self._watch,)
        )

    def received(self, job: Job) -> tuple[np.ndarray, np.ndarray, int]:
        G = self.beats_per_vector(job)
        v = self.complete(job)
        if not v:
            return np.zeros((0, job.cols), np.int64), np.zeros((0, G), np.int64), 0
        f = self.codec["o"].unpack(self.snk.words[: v * G])
        y, last = decode_outputs(f, job, self.rtl.lanes, rows=v)
        return y, last, v

    def check(self, sb: Scoreboard, job: Job, exp: np.ndarray) -> int:
        y, last, v = self.received(job)
        return sb.check(
            {"y": y, "last": last},
            {"y": exp[:v], "last": expected_last(job, self.rtl.lanes, v)},
            v,
            context=lambda i: f"op={job.op} len={job.length} cols={job.cols}",
        )


@cocotb.test()
async def random_jobs(dut):
    """Random jobs of every op until ``vectors`` output rows matched the golden model."""
    p = load_params()
    rtl, gp = _params(p)
    total = int(p.get("vectors", 1000))
    tb = SfuTB(
        dut,
        rtl,
        int(p.get("seed", 1)),
        float(p.get("p_valid", 0.8)),
        float(p.get("p_ready", 0.7)),
    )
    rng = tb.rng
    sb = Scoreboard(f"sfu lanes={rtl.lanes}")
    tb.start_clock()
    await tb.reset()
    t0 = time.perf_counter()
    result: dict[str, Any] = {}
    coverage: dict[str, int] = {}
    reset_done = not p.get("reset_mid", True)
    job_i = 0
    while sb.compared < total:
        V = int(min(total - sb.compared, rng.integers(4, 40)))
        op = golden.OPS[job_i % len(golden.OPS)]
        # the first jobs of each op: L = 1 and L one past a multiple of lanes
        L = (1, rtl.lanes + 1)[job_i // 4] if job_i < 8 else None
        job = random_job(rng, gp, V, op=op, L=L)
        job_i += 1
        exp = job.expected()
        for k, v in _coverage(job, exp).items():
            coverage[k] = coverage.get(k, 0) + v
        await tb.program(job)
        if not reset_done and V >= 8:
            cut = (V // 2) * groups(job.cols, rtl.lanes) + 1
            await tb.stream(job, stop_after=cut)
            tb.check(sb, job, exp)  # the prefix delivered before the reset
            await tb.reset()
            await tb.program(job)
            reset_done = True
            result["reset_after_beats"] = cut
            result["reset_op"] = job.op
        await tb.stream(job)
        tb.check(sb, job, exp)
        if sb.mismatches:
            break
    result.update(
        vectors=sb.compared,
        mismatches=sb.mismatches,
        errors=sb.errors,
        jobs=job_i,
        rtl_cycles=tb.cycle,
        handshake_checked=tb.promise.checked,
        handshake_violations=tb.promise.violations,
        wall_s=time.perf_counter() - t0,
        coverage=coverage,
    )
    save_result(result)
    assert sb.mismatches == 0, "\n".join(sb.errors)


@cocotb.test()
async def file_vectors(dut):
    """One job from ``params['in']`` (.npz: op, x, b, mult, shift, wide); ``y`` to
    ``params['out']``.  No scoreboard: the caller compares."""
    p = load_params()
    rtl, gp = _params(p)
    with np.load(p["in"]) as f:
        op = golden.OPS[int(f["op"])]
        job = Job(
            op,
            np.asarray(f["x"], np.int64),
            gp,
            b=np.asarray(f["b"], np.int64) if op == "matmul" else None,
            mult=int(f["mult"]),
            shift=int(f["shift"]),
            wide=bool(f["wide"]),
        )
    tb = SfuTB(dut, rtl, 1, 1.0, 1.0)
    tb.start_clock()
    await tb.reset()
    await tb.program(job)
    cycles = await tb.stream(job)
    y, _, v = tb.received(job)
    np.savez(p["out"], y=y, cycles=np.int64(cycles))
    save_result({"vectors": v, "cycles": cycles})
