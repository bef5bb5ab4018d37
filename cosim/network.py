"""Level 4, "analog-rtl": a whole network with the Verilated ``periphery_top`` in the loop.

The network runs inside the cocotb process, layer by layer, exactly as level 3
(:mod:`aimcflow.models.nn.golden`) does, except that every column job is executed by the
RTL: the job's NMPU coefficients and registers go in through ``nmpu_load``/``mgmt_load``,
its input segments through ``x``; every DAC request the controller makes is answered by
the job's Python tile (``tile.forward_codes``, noise keyed by seed, layer, tile, image and
management iteration); ``y`` comes back on ``o`` and ``e``, ``iter``, ``sat_any`` on
``status``.  The RTL's ``y`` feeds the next layer (true RTL in the loop).  Each job is also
run through the golden models (:func:`golden_periphery`) on the same inputs and every
output activation and every status record is compared: the first mismatching layer is
finished, reported (layer, tile, image, column, expected, actual) and the run stops.

Tile answers: the golden run records, per row tile and management iteration, the DAC codes
the golden controller sent and the tile's answer.  The tile model is a pure function of
(DAC codes, noise key, iteration) (counter-based noise, ARCHITECTURE.md), so when the RTL
asks with exactly those codes (compared as packed beats) the recorded answer *is* the
tile's answer; any other request is answered by calling the tile live.  This keeps the
per-segment Python cost to a list comparison; ``live_tiles=True`` calls the tile for every
request instead.

Cycle accounting (``ideal_cycles``): per job, one cycle per coefficient-load beat plus,
per input segment and management iteration, ``ceil(R/lanes)`` DAC beats followed by
``ceil(C/lanes)`` ADC beats: the tile interface is the bottleneck stream (a crossbar
converts only once all its inputs are applied, so a segment's answer cannot overlap its
own DAC codes).  Input ``x`` and output ``o`` transfers overlap with it.  Pipeline
latency and the controller's per-segment turnaround are not counted as ideal.

Two ways to drive the RTL, on one Verilator build of ``network_top``
(:mod:`aimcflow.cosim.network_top`, ``periphery_top`` plus ring buffers):
:class:`RingNetworkTB` (the default: no gaps, no backpressure, recorded tile answers)
pre-loads a job's coefficients, input segments and the recorded tile answers into the
wrapper's input rings and reads ``o``, ``status`` and every DAC request back from its
output rings, so Python wakes once per refill/drain instead of once per clock while
``periphery_top`` still sees one beat per clock with valid/ready; :class:`NetworkTB` (random
gaps and backpressure, live tiles, or ``per_beat``) drives ``periphery_top`` through the
wrapper's bypass with per-beat agents, one Python wake-up per clock.  Both present the same
stream timing with no gaps, so both count the same ``periphery_top`` cycles.

Host side: :func:`build_for` (one cached Verilator build per config / input format) and
:func:`run_level4`.  The chip program reaches the simulator as a pickle next to the run's
parameters (it holds the programmed tiles, which only Python can evaluate).
"""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from aimcflow.models.nn.golden import (
    ColumnJob,
    ColumnResult,
    LayerTrace,
    golden_periphery,
    input_codes,
    layer_jobs,
    logits_of,
)

MODULE = "aimcflow.cosim.network"
TOPLEVEL = "aimcflow_network_top"
RING = {"k": 16, "in_words": 256, "out_beats": 4096}  # network_top ring sizes
MAX_REPORT = 20  # mismatch descriptions kept in the result
_IMPORTED_AT = time.time()  # in the simulator: when cocotb imported this module


# ----------------------------------------------------------------------------- host side
def x_format(prog) -> tuple[int, bool]:
    """One controller input format that holds every layer's input: the layers' own format
    when they agree, else signed and one bit wider than the widest unsigned one."""
    fmts = {(lp.in_bits, lp.in_signed) for lp in prog.layers}
    if len(fmts) == 1:
        return next(iter(fmts))
    return max(b + (0 if s else 1) for b, s in fmts), True


def rtl_params(prog):
    """``(NmpuRtlParams, MgmtRtlParams)`` of the chip program's config."""
    from aimcflow.flows.verilog import mgmt_params, nmpu_params

    x_bits, x_signed = x_format(prog)
    return nmpu_params(prog.cfg), mgmt_params(prog.cfg, x_bits=x_bits, x_signed=x_signed)


def check_fits(prog) -> None:
    """Raise :class:`UserInputError` if a layer needs more row tiles than the NMPU holds."""
    from aimcflow.models.errors import UserInputError

    nrtl, _ = rtl_params(prog)
    for lp in prog.layers:
        if len(lp.row_slices) > nrtl.max_tiles:
            raise UserInputError(
                f"layer {lp.name}: {len(lp.row_slices)} row tiles; the periphery RTL "
                f"accumulates at most {nrtl.max_tiles} (max_tiles)"
            )


def build_for(prog, sim: str = "verilator"):
    """The Verilator (or ``sim="icarus"``: Icarus) build of ``periphery_top`` for this
    program's config (cached by the hash of its Verilog, i.e. of every parameter): a
    :class:`aimcflow.cosim.runner.Build` with ``build_s`` and ``cached``."""
    from aimcflow.cosim.network_top import NetworkTop, NetworkTopParams
    from aimcflow.cosim.runner import build_component

    nrtl, mrtl = rtl_params(prog)
    top = NetworkTop(NetworkTopParams(nrtl, mrtl, **RING))
    return build_component(top, TOPLEVEL, name="network-top", sim=sim)


@dataclass
class Level4Result:
    """What a level-4 run reported (see the module docstring for the cycle definitions)."""

    logits: np.ndarray | None
    activations_compared: int
    mismatches: int
    errors: list[dict]
    rtl_cycles: int
    ideal_cycles: int
    layers: list[dict]
    sim_wall_s: float
    build_s: float
    build_cached: bool
    waves: str | None = None
    log: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def efficiency(self) -> float | None:
        return self.ideal_cycles / self.rtl_cycles if self.rtl_cycles else None


def run_level4(
    prog,
    x: np.ndarray,
    images: np.ndarray | None = None,
    *,
    build=None,
    batch_size: int = 512,
    corrupt: dict | None = None,
    live_tiles: bool = False,
    p_valid: float = 1.0,
    p_ready: float = 1.0,
    seed: int = 1,
    waves_on_failure: bool = True,
    bare_cycles: int = 0,
    per_beat: bool = False,
) -> Level4Result:
    """Run ``x`` (float inputs) through ``prog`` at level 4.

    ``corrupt`` (tests only) = ``{"layer": stage index, "field": gain|offset|mult|bias,
    "column": c, "delta": int}`` adds ``delta`` to one coefficient as loaded into the RTL
    (the golden reference keeps the right one).  ``p_valid``/``p_ready`` < 1 add random
    gaps and backpressure on the streams.  ``bare_cycles`` > 0 also times bare cocotb clock
    loops of that many cycles on the same Verilated top in the same simulator run
    (``extra["bare_s_per_cycle"]``: one ``RisingEdge`` per cycle; ``extra["two_trigger_s_per_cycle"]``:
    the test bench's ``FallingEdge`` + ``ReadOnly`` per cycle without agents).

    With no gaps, no backpressure and recorded tile answers the bench feeds
    ``network_top``'s rings (:mod:`aimcflow.cosim.network_top`, Python wakes once per
    refill); otherwise, or with ``per_beat``, per-beat agents drive ``periphery_top``
    through the wrapper's bypass, one Python wake-up per clock.
    """
    from aimcflow.cosim.runner import CosimFailure, cache_dir

    images = np.arange(len(x)) if images is None else np.asarray(images, dtype=np.int64)
    b = build if build is not None else build_for(prog)
    work = cache_dir() / "network" / uuid.uuid4().hex[:12]
    work.mkdir(parents=True)
    try:
        blob = work / "job.pkl"
        with open(blob, "wb") as fh:
            pickle.dump(
                {
                    "prog": prog,
                    "x": np.asarray(x),
                    "images": images,
                    "batch_size": batch_size,
                    "corrupt": corrupt,
                    "live_tiles": live_tiles,
                },
                fh,
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        nrtl, mrtl = rtl_params(prog)
        params = {
            "job": str(blob),
            "nmpu_rtl": dataclasses.asdict(nrtl),
            "mgmt_rtl": dataclasses.asdict(mrtl),
            "p_valid": p_valid,
            "p_ready": p_ready,
            "seed": seed,
            "bare_cycles": bare_cycles,
            "ring": RING,
            "per_beat": per_beat,
        }
        waves = log = None
        t_launch = time.time()
        try:
            rr = b.run(MODULE, params, testcase="network", waves_on_failure=waves_on_failure)
            res, wall = rr.result, rr.wall_s
        except CosimFailure as exc:
            run_dir = exc.run_dir
            f = run_dir / "result.json"
            if not f.exists():
                raise
            import json

            res, wall = json.loads(f.read_text()), float("nan")
            waves = str(exc.waves) if exc.waves else None
            log = str(run_dir / "sim.log")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "startup" in res:  # where the simulator run's fixed cost goes
        st = res["startup"]
        res["startup_s"] = {
            "to_module_import": st["module_imported"] - t_launch,
            "to_test_start": st["test_started"] - t_launch,
            "to_unpickled": st["unpickled"] - t_launch,
            "to_tb_built": st["tb_built"] - t_launch,
            "to_program_loaded": st["program_loaded"] - t_launch,
        }
    y_last = res.get("y_last")
    logits = logits_of(prog, np.asarray(y_last, dtype=np.int64)) if y_last is not None else None
    return Level4Result(
        logits=logits,
        activations_compared=int(res["activations_compared"]),
        mismatches=int(res["mismatches"]),
        errors=list(res["errors"]),
        rtl_cycles=int(res["rtl_cycles"]),
        ideal_cycles=int(res["ideal_cycles"]),
        layers=list(res["layers"]),
        sim_wall_s=float(res.get("sim_wall_s", wall)),
        build_s=b.build_s,
        build_cached=b.cached,
        waves=waves,
        log=log,
        extra={
            k: res[k]
            for k in (
                "status_compared",
                "dac_mismatches",
                "bare_s_per_cycle",
                "two_trigger_s_per_cycle",
                "two_trigger_4_reads_s_per_cycle",
                "startup_s",
                "loop_s",
            )
            if k in res
        },
    )


def format_mismatch(err: dict) -> str:
    """One line: layer, tile, image, column, expected, actual."""
    return (
        f"layer {err['layer']} ({err['layer_name']}), column tile {err['tile']}"
        f"{'' if err.get('row_tile') is None else ', row tile ' + str(err['row_tile'])}, "
        f"image {err['image']} (vector {err['vector']}), {err['what']} column "
        f"{err['column']}: expected {err['expected']}, actual {err['actual']}"
    )


# ------------------------------------------------------------------------ both sides
class RecordingTile:
    """Wraps a level-3 tile callable and records, per management iteration, what it was
    asked and what it answered (the golden controller asks all still-active vectors of
    one iteration in one call)."""

    def __init__(self, tile) -> None:
        self.tile = tile
        self.calls: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def __call__(self, d, iteration, active):
        a, s = self.tile(d, iteration, active)
        idx = np.flatnonzero(active)
        if idx.size:
            k = int(iteration[idx[0]])
            if np.any(iteration[idx] != k):  # the golden controller never mixes iterations
                raise AssertionError("one tile call mixes management iterations")
            self.calls[k] = (idx, np.asarray(d)[idx], np.asarray(a)[idx], np.asarray(s)[idx])
        return a, s

    def live(self, v: int, V: int, d: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
        """Ask the tile for vector ``v`` only (codes ``d``, iteration ``k``)."""
        dd = np.zeros((V, d.shape[0]), dtype=np.int64)
        dd[v] = d
        it = np.zeros(V, dtype=np.int64)
        it[v] = k
        act = np.zeros(V, dtype=bool)
        act[v] = True
        a, s = self.tile(dd, it, act)
        return np.asarray(a)[v].astype(np.int64), bool(np.asarray(s)[v])


def _x_segment_words(codec, x_lanes: int, x_segments) -> tuple[list[int], list[int]]:
    """The ``x`` stream's beat words of one column job, in segment order v0 t0, v0 t1, ...:
    each segment padded to whole beats of ``x_lanes`` values, ``last`` on its final beat.
    Also returns the beat count of each row tile's segment."""
    V = len(x_segments[0])
    per_t = []
    for xs in x_segments:
        nb = _groups(xs.shape[1], x_lanes)
        last = np.tile(np.arange(nb) == nb - 1, V).astype(np.int64)
        per_t.append((codec.pack({"x": _pad_beats(xs, x_lanes), "last": last}), nb))
    words: list[int] = []
    for v in range(V):
        for w, nb in per_t:
            words.extend(w[v * nb : (v + 1) * nb])
    return words, [nb for _, nb in per_t]


def _groups(n: int, lanes: int) -> int:
    return -(-n // lanes)


def _pad_beats(v: np.ndarray, lanes: int) -> np.ndarray:
    """(N, n) -> (N * ceil(n/lanes), lanes), zero-padded."""
    N, n = v.shape
    G = _groups(n, lanes)
    return np.pad(v, [(0, 0), (0, G * lanes - n)]).reshape(N * G, lanes)


try:
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None

if cocotb is not None:
    from aimcflow.cosim.benches import nmpu as nbench
    from aimcflow.cosim.benches.periphery_top import StatusMonitor, top_codecs
    from aimcflow.cosim.network_top import (
        COUNT_BITS,
        IN_RINGS,
        OUT_RINGS,
        TARGETS,
        NetworkTop,
        NetworkTopParams,
    )
    from aimcflow.cosim.runner import load_params, save_result
    from aimcflow.cosim.streams import TB, StreamSink, StreamSource
    from aimcflow.models.periphery import mgmt as mgolden
    from aimcflow.rtl.params import MgmtRtlParams, NmpuRtlParams
    from aimcflow.rtl.periphery_top import PeripheryTop
    from cocotb.handle import Immediate

    class NetTileResponder:
        """The analog tiles of one column job behind ``dac``/``adc``.

        Segments arrive in the order v0 t0, v0 t1, ..., each once per management
        iteration (``iter`` 0 starts a new segment).  A request equal (as packed beats) to
        the one the golden controller made is answered with the recorded tile answer,
        anything else by the tile itself.  The final answer per (vector, row tile) is kept
        as the job's ADC codes ``a``.
        """

        def __init__(self, dac: StreamSink, adc: StreamSource, dac_codec, adc_codec, lanes):
            self.dac, self.adc = dac, adc
            self.dac_codec, self.adc_codec = dac_codec, adc_codec
            self.lanes = lanes
            leaves = {leaf.name: leaf for leaf in dac_codec.leaves}
            self.iter_off, self.iter_mask = leaves["iter"].offset, (1 << leaves["iter"].width) - 1
            self.live_tiles = False
            self.job = None

        def start(self, job: ColumnJob, rec: list[RecordingTile], x_lanes: int) -> None:
            self.job, self.rec = job, rec
            self.V = len(job.x_segments[0])
            self.T = len(job.x_segments)
            self.C = len(job.mult)
            self.G = _groups(self.C, self.lanes)
            self.nb = [_groups(xs.shape[1], x_lanes) for xs in job.x_segments]
            self.rows = [xs.shape[1] for xs in job.x_segments]
            self.x_lanes = x_lanes
            self.seen = len(self.dac.words)
            self.seg = -1
            self.a = np.zeros((self.V, self.T, self.C), dtype=np.int64)
            self.requests = 0
            self.live_calls = 0
            self.dac_mismatches: list[tuple[int, int, int]] = []
            # expected DAC beats and recorded answers, packed once per (row tile, iteration)
            self.memo: dict[tuple[int, int], tuple] = {}
            for t, r in enumerate(rec):
                for k, (idx, d, a, s) in r.calls.items():
                    pos = np.full(self.V, -1, dtype=np.int64)
                    pos[idx] = np.arange(idx.size)
                    n = idx.size
                    db = _pad_beats(d, x_lanes)
                    last = np.tile(np.arange(self.nb[t]) == self.nb[t] - 1, n).astype(np.int64)
                    dw = self.dac_codec.pack({"d": db, "iter": np.full(len(db), k), "last": last})
                    ab = _pad_beats(a, self.lanes)
                    alast = np.tile(np.arange(self.G) == self.G - 1, n).astype(np.int64)
                    aw = self.adc_codec.pack(
                        {"a": ab, "sat_any": np.repeat(s.astype(np.int64), self.G), "last": alast}
                    )
                    self.memo[(t, k)] = (pos, dw, aw, a)

        def drive(self) -> None:
            if self.job is None:
                return
            words = self.dac.words
            while len(words) > self.seen:
                k = (words[self.seen] >> self.iter_off) & self.iter_mask
                seg = self.seg + 1 if k == 0 else self.seg
                t = seg % self.T
                nb = self.nb[t]
                if len(words) - self.seen < nb:
                    return
                self.seg = seg
                v = seg // self.T
                got = words[self.seen : self.seen + nb]
                self.seen += nb
                self.requests += 1
                m = self.memo.get((t, k))
                pos = int(m[0][v]) if m is not None and v < self.V else -1
                # the mgmt protocol sends no DAC codes before the answer is taken; holding
                # ready low meanwhile saves reading dac.valid in those cycles
                self.dac.hold = True
                if not self.live_tiles and pos >= 0 and got == m[1][pos * nb : (pos + 1) * nb]:
                    self.adc.send(m[2][pos * self.G : (pos + 1) * self.G])
                    if v < self.V:
                        self.a[v, t] = m[3][pos]
                    continue
                if pos < 0 or got != m[1][pos * nb : (pos + 1) * nb]:
                    self.dac_mismatches.append((v, t, int(k)))
                f = self.dac_codec.unpack(got)
                d = f["d"].reshape(-1)[: self.rows[t]]
                self.live_calls += 1
                if v < self.V:
                    a, s = self.rec[t].live(v, self.V, d, int(k))
                    self.a[v, t] = a
                else:  # more segments than vectors: answer something so the RTL can finish
                    a, s = np.zeros(self.C, dtype=np.int64), False
                ab = _pad_beats(a[None, :], self.lanes)
                last = (np.arange(self.G) == self.G - 1).astype(np.int64)
                self.adc.send(
                    self.adc_codec.pack({"a": ab, "sat_any": np.full(self.G, int(s)), "last": last})
                )

        def sample(self) -> None:
            pass

        def flush(self) -> None:
            self.job = None

    # Lean agents: the stream protocol of cosim/streams.py, with fewer simulator accesses
    # per cycle (a signal access costs about as much as a trigger): a port is written only
    # when its value changes, and ``status`` is read only in the cycles where it can be
    # valid.  Writes are ``Immediate``: they happen at the falling edge, half a clock before
    # the DUT samples them, and a plain (deposit) write would cost an extra ReadWrite
    # phase per cycle.
    class LeanSource(StreamSource):
        def __init__(self, *args, **kw) -> None:
            super().__init__(*args, **kw)
            self._valid_now = 0

        def drive(self) -> None:
            if self._advance():
                self.payload.value = Immediate(self.queue[0])
            v = int(self._offering)
            if v != self._valid_now:
                self.valid.value = Immediate(v)
                self._valid_now = v

        def flush(self) -> None:
            super().flush()
            self._valid_now = 0

    class AnswerSource(LeanSource):
        """The ``adc`` source; knows when the first beat of a tile answer is taken."""

        def __init__(self, *args, last_bit: int, dac: LeanSink, **kw) -> None:
            super().__init__(*args, **kw)
            self.last_bit = last_bit
            self.dac = dac
            self.next_is_first = True
            self.first_taken = False

        def drive(self) -> None:
            if self._taken:
                self.next_is_first = bool((self.queue[0] >> self.last_bit) & 1)
            super().drive()

        def sample(self) -> None:
            super().sample()
            self.first_taken = self._taken and self.next_is_first
            if self._taken and (self.queue[0] >> self.last_bit) & 1:
                self.dac.hold = False  # answer complete: DAC codes welcome from next cycle

        def flush(self) -> None:
            super().flush()
            self.next_is_first, self.first_taken = True, False

    class LeanSink(StreamSink):
        """``hold`` forces ready low (the tile takes no DAC codes while it answers)."""

        def __init__(self, *args, **kw) -> None:
            super().__init__(*args, **kw)
            self._ready_now = False
            self.hold = False

        def drive(self) -> None:
            r = self._ready = not self.hold and self._draw()
            if r != self._ready_now:
                self.ready.value = Immediate(int(r))
                self._ready_now = r

        def flush(self) -> None:
            super().flush()
            self._ready_now = self.hold = False

    class AnswerStatusMonitor(StatusMonitor):
        """``status`` is valid exactly when the first beat of a management result enters
        the NMPU, and that beat is the first beat of the tile's final answer passing
        through the controller combinationally (``rtl/periphery_top.py``, ``rtl/mgmt.py``):
        so the port is read only in cycles where the ``adc`` source's first answer beat is
        taken.  A record missed by a wrong assumption shows up as a timeout."""

        def __init__(self, dut, adc: AnswerSource) -> None:
            super().__init__(dut)
            self.adc = adc

        def sample(self) -> None:
            if self.adc.first_taken:
                super().sample()

    class NetworkTB(TB):
        """``periphery_top`` with the network's tiles behind it; one column job at a time."""

        def __init__(self, dut, nrtl, mrtl, seed: int, p_valid: float, p_ready: float):
            super().__init__(dut, seed)
            self.nrtl, self.mrtl = nrtl, mrtl
            self.codec = c = top_codecs(PeripheryTop(nrtl, mrtl))
            last_bit = next(leaf.offset for leaf in c["adc"].leaves if leaf.name == "last")
            self.xsrc = self.add(LeanSource(dut, "x", self.rng, p_valid))
            self.nload = self.add(LeanSource(dut, "nmpu_load", self.rng, p_valid))
            self.mload = self.add(LeanSource(dut, "mgmt_load", self.rng, p_valid))
            self.dac = self.add(LeanSink(dut, "dac", self.rng, p_ready))
            # the responder drives before the adc source, so an answer is offered in the
            # cycle after the last DAC beat (a tile with no conversion latency)
            self.adc = AnswerSource(dut, "adc", self.rng, p_valid, last_bit=last_bit, dac=self.dac)
            self.tile = self.add(
                NetTileResponder(self.dac, self.adc, c["dac"], c["adc"], nrtl.lanes)
            )
            self.add(self.adc)
            self.osnk = self.add(LeanSink(dut, "o", self.rng, p_ready))
            self.status = self.add(AnswerStatusMonitor(dut, self.adc))  # after adc: samples
            # only agents with work in a phase are called (status drives nothing, the
            # responder samples nothing)
            self.loop_s = 0.0  # wall time inside the per-cycle loop
            self.drivers = [a.drive for a in self.agents if a is not self.status]
            self.samplers = [a.sample for a in self.agents if a is not self.tile]

        async def run(self, until, max_cycles: int, hooks=()) -> int:
            """:meth:`TB.run` over the bound agent methods of the phases."""
            from cocotb.triggers import FallingEdge, ReadOnly

            falling, readonly = FallingEdge(self.dut.clk), ReadOnly()
            drivers, samplers = self.drivers, self.samplers
            t0 = time.perf_counter()
            start = cycle = self.cycle
            end = start + max_cycles
            try:
                while not until():
                    if cycle >= end:
                        raise AssertionError(f"timeout after {max_cycles} cycles")
                    await falling
                    for d in drivers:
                        d()
                    await readonly
                    for smp in samplers:
                        smp()
                    cycle += 1
            finally:
                self.cycle = cycle
                self.loop_s += time.perf_counter() - t0
            return cycle - start

        def load_words(self, job: ColumnJob, corrupt: dict | None) -> tuple[list, list]:
            coef = {
                f: np.array(getattr(job, f), dtype=np.int64)
                for f in ("gain", "offset", "mult", "bias")
            }
            if corrupt is not None:
                arr = coef[corrupt["field"]]
                arr[..., int(corrupt["column"])] += int(corrupt["delta"])
            T, C = coef["gain"].shape
            nj = nbench.Job(
                np.zeros((0, T, C), dtype=np.int64),
                np.zeros((0, T), dtype=np.int64),
                coef["gain"],
                coef["offset"],
                coef["mult"],
                coef["bias"],
                job.nmpu,
            )
            nw = self.codec["nmpu_load"].pack(nbench.load_beats(nj, self.nrtl))
            mw = self.codec["mgmt_load"].pack(
                {
                    "reg": np.array([0, 1]),
                    "value": np.array(
                        [mgolden.NOISE_MODES.index(job.mgmt.noise), job.mgmt.bound_max_iter]
                    ),
                }
            )
            return nw, mw

        async def run_job(
            self, job: ColumnJob, rec: list[RecordingTile], corrupt: dict | None, gold=None
        ) -> tuple[ColumnResult, int, int]:
            """Program, stream and collect one column job; returns the RTL's result, the
            cycles it took and its ideal cycles (module docstring)."""
            start = self.cycle
            nw, mw = self.load_words(job, corrupt)
            self.nload.send(nw)
            self.mload.send(mw)
            await self.run(lambda: self.nload.idle and self.mload.idle, max_cycles=100_000)
            V, T, C = len(job.x_segments[0]), len(job.x_segments), len(job.mult)
            G = _groups(C, self.nrtl.lanes)
            xl = self.mrtl.x_lanes
            words, nbs = _x_segment_words(self.codec["x"], xl, job.x_segments)
            for agent in (self.osnk, self.status):
                agent.words.clear()
            self.dac.words.clear()
            self.tile.start(job, rec, xl)
            self.xsrc.send(words)
            beats = sum(nbs) * V + V * T * G
            osnk, status = self.osnk.words, self.status.words
            await self.run(
                lambda: len(osnk) >= V * G and len(status) >= V * T,
                max_cycles=100 * beats * (job.mgmt.bound_max_iter + 1) + 10_000,
            )
            self.tile.job = None
            f = self.codec["o"].unpack(osnk[: V * G])
            y = f["y"].reshape(V, G * self.nrtl.lanes)[:, :C]
            s = self.codec["status"].unpack(status[: V * T])
            e, it, sat = (s[k].reshape(V, T) for k in ("e", "iter", "sat_any"))
            ideal = len(nw) + len(mw)
            for t, nb in enumerate(nbs):
                ideal += int(np.sum(it[:, t] + 1)) * (nb + G)
            res = ColumnResult(y.astype(np.int64), self.tile.a.copy(), e, it, sat.astype(bool))
            return res, self.cycle - start, ideal

    class RingNetworkTB(NetworkTB):
        """The same column jobs on ``network_top``'s rings (ring mode, see
        :mod:`aimcflow.cosim.network_top`): Python wakes once per refill/drain, not once
        per clock.  The tile answers are the ones the golden controller's run recorded,
        pre-loaded in request order (the tile model is a pure function of the request,
        module docstring); every DAC request the RTL made is captured and compared with
        the golden controller's afterwards, so a different or extra request is a
        mismatch (a missing answer shows up as a timeout)."""

        def __init__(self, dut, nrtl, mrtl, seed: int, ring: NetworkTopParams):
            super().__init__(dut, nrtl, mrtl, seed, 1.0, 1.0)
            from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

            self.ring = ring
            self.widths = NetworkTop(ring).widths
            self.k = ring.k
            self.falling, self.readonly = FallingEdge(dut.clk), ReadOnly()
            self.stop_rise = RisingEdge(dut.stop)
            self.in_wp = {n: 0 for n in IN_RINGS}
            self.in_mod = 1 << ((ring.in_words - 1).bit_length() + 1)
            self.out_rp = {n: 0 for n in OUT_RINGS}
            self.targets = {n: 0 for n in TARGETS}
            self.out: dict[str, list[int]] = {n: [] for n in OUT_RINGS}
            self.wake_count = 0
            dut.bypass.value = 0
            dut.go.value = 0
            # every ring input defined from time 0: Verilator starts inputs at 0, Icarus at
            # X, and an X target or read pointer would make ``stop`` X
            dut.limit.value = 0
            for n in IN_RINGS:
                for port in ("wdata", "wen", "final"):
                    getattr(dut, f"{n}_{port}").value = 0
            for n in OUT_RINGS:
                getattr(dut, f"{n}_rp").value = 0
            for n in TARGETS:
                getattr(dut, f"{n}_target").value = 0

        def _u(self, name: str) -> int:
            return getattr(self.dut, name).value.to_unsigned()

        def _set(self, name: str, value: int) -> None:
            getattr(self.dut, name).value = Immediate(int(value))

        async def _feed(self, feeds: dict[str, list]) -> None:
            """At a falling edge with ``go`` low: write wide words while there is room;
            a ring whose words are all written is marked ``final``."""
            k = self.k
            room = {}
            for n in feeds:
                used = (self.in_wp[n] - self._u(f"{n}_rp")) % self.in_mod
                room[n] = self.ring.in_words - used
            active = set()
            while True:
                now = set()
                for n, st in feeds.items():
                    ws, i = st
                    if i < len(ws) and room[n] > 0:
                        chunk = ws[i : i + k]
                        w = self.widths[n]
                        val = len(chunk) << (k * w)
                        for j, word in enumerate(chunk):
                            val |= word << (j * w)
                        self._set(f"{n}_wdata", val)
                        st[1] = i + len(chunk)
                        room[n] -= 1
                        self.in_wp[n] = (self.in_wp[n] + 1) % self.in_mod
                        now.add(n)
                for n in active ^ now:
                    self._set(f"{n}_wen", int(n in now))
                active = now
                if not now:
                    break
                await self.falling
            for n in IN_RINGS:  # a ring with nothing more to come must not stop the run
                ws, i = feeds.get(n, ((), 0))
                self._set(f"{n}_final", int(i >= len(ws)))

        async def _drain(self) -> None:
            """At a falling edge with ``go`` low: read every captured beat, ``k`` per clock."""
            k = self.k
            left = {}
            for n in OUT_RINGS:
                c = self._u(f"{n}_count")
                if c != self.out_rp[n]:
                    left[n] = (c - self.out_rp[n]) % (1 << COUNT_BITS)
            while left:
                for n in left:
                    self._set(f"{n}_rp", self.out_rp[n])
                await self.falling
                for n in list(left):
                    w, m = self.widths[n], (1 << self.widths[n]) - 1
                    take = min(k, left[n])
                    # only the ``take`` low words: Icarus leaves never-written ring
                    # words X (Verilator 0); an X in a taken word still fails int()
                    v = int(str(getattr(self.dut, f"{n}_rdata").value)[-take * w :], 2)
                    self.out[n].extend((v >> (j * w)) & m for j in range(take))
                    self.out_rp[n] = (self.out_rp[n] + take) % (1 << COUNT_BITS)
                    left[n] -= take
                    if not left[n]:
                        del left[n]
                        self._set(f"{n}_rp", self.out_rp[n])

        async def run_rings(self, feeds: dict[str, list], add: dict[str, int], max_cycles: int):
            """Feed ``feeds`` (ring -> words), raise the targets by ``add`` and let
            ``periphery_top`` run until they are met; raises on timeout."""
            await self.falling
            for n, a in add.items():
                self.targets[n] = (self.targets[n] + a) % (1 << COUNT_BITS)
                self._set(f"{n}_target", self.targets[n])
            start = self._u("cycles")
            self._set("limit", start + max_cycles)
            st = {n: [ws, 0] for n, ws in feeds.items()}
            t0 = time.perf_counter()
            last = (-1, -1)
            try:
                while True:
                    await self._feed(st)
                    self._set("go", 1)
                    await self.readonly
                    if not self.dut.stop.value:
                        await self.stop_rise
                    self.wake_count += 1
                    await self.falling
                    self._set("go", 0)
                    await self._drain()
                    if self.dut.done.value:
                        break
                    now = self._u("cycles")
                    if now - start >= max_cycles:
                        raise AssertionError(f"timeout after {max_cycles} cycles")
                    fed = sum(i for _, i in st.values())
                    if now == last[0] and fed == last[1]:  # stopped with nothing to give
                        raise AssertionError(f"network_top stalled at cycle {now}")
                    last = (now, fed)
            finally:
                self.cycle = self._u("cycles")
                self.loop_s += time.perf_counter() - t0

        async def run_job(
            self, job: ColumnJob, rec: list[RecordingTile], corrupt: dict | None, gold=None
        ) -> tuple[ColumnResult, int, int]:
            start = self._u("cycles")
            nw, mw = self.load_words(job, corrupt)
            await self.run_rings(
                {"nmpu_load": nw, "mgmt_load": mw},
                {"nmpu_load": len(nw), "mgmt_load": len(mw)},
                max_cycles=100_000,
            )
            V, T, C = len(job.x_segments[0]), len(job.x_segments), len(job.mult)
            G = _groups(C, self.nrtl.lanes)
            xl = self.mrtl.x_lanes
            words, nbs = _x_segment_words(self.codec["x"], xl, job.x_segments)
            # the golden controller's requests and the recorded answers, in request order
            tile = self.tile
            tile.start(job, rec, xl)
            memo = tile.memo
            dac_exp: list[int] = []
            seg_ids: list[tuple[int, int, int, int]] = []  # (v, t, k, first beat)
            answers: list[int] = []
            its = np.asarray(gold.iters, dtype=np.int64)
            for v in range(V):
                for t in range(T):
                    nb = nbs[t]
                    for kk in range(int(its[v, t]) + 1):
                        pos, dw, aw, a = memo[(t, kk)]
                        q = int(pos[v])
                        seg_ids.append((v, t, kk, len(dac_exp)))
                        dac_exp.extend(dw[q * nb : (q + 1) * nb])
                        answers.extend(aw[q * G : (q + 1) * G])
                    tile.a[v, t] = a[q]
            for n in OUT_RINGS:
                self.out[n] = []
            beats = sum(nbs) * V + V * T * G
            await self.run_rings(
                {"x": words, "adc": answers},
                {"o": V * G, "status": V * T},
                max_cycles=100 * beats * (job.mgmt.bound_max_iter + 1) + 10_000,
            )
            tile.job = None
            got = self.out["dac"]
            tile.requests = len(seg_ids)
            tile.live_calls = 0
            if got != dac_exp:
                ends = [s[3] for s in seg_ids[1:]] + [len(dac_exp)]
                for (v, t, kk, b0), b1 in zip(seg_ids, ends, strict=True):
                    if got[b0:b1] != dac_exp[b0:b1]:
                        tile.dac_mismatches.append((v, t, kk))
                if len(got) > len(dac_exp):  # requests beyond the golden controller's
                    tile.dac_mismatches.append((V, T - 1, -1))
            osnk, status = self.out["o"], self.out["status"]
            f = self.codec["o"].unpack(osnk[: V * G])
            y = f["y"].reshape(V, G * self.nrtl.lanes)[:, :C]
            s = self.codec["status"].unpack(status[: V * T])
            e, it, sat = (s[k].reshape(V, T) for k in ("e", "iter", "sat_any"))
            ideal = len(nw) + len(mw)
            for t, nb in enumerate(nbs):
                ideal += int(np.sum(it[:, t] + 1)) * (nb + G)
            res = ColumnResult(y.astype(np.int64), tile.a.copy(), e, it, sat.astype(bool))
            return res, self._u("cycles") - start, ideal

    def _compare(
        job, lp, rtl: ColumnResult, gold: ColumnResult, lj, ids, errors
    ) -> tuple[int, int]:
        """Count mismatching activations (y) and status fields; describe the first few."""
        per_image = len(lj.rows) // max(1, len(ids))
        col0 = lj.col_slices[job.column_tile].start
        checks = [("y", rtl.y, gold.y, None)]
        checks += [
            (n, getattr(rtl, n).astype(np.int64), getattr(gold, n).astype(np.int64), "t")
            for n in ("e", "iters", "sat")
        ]
        bad_y = bad_s = 0
        for name, got, exp, kind in checks:
            bad = np.argwhere(got != exp)
            if name == "y":
                bad_y += len(bad)
            else:
                bad_s += len(bad)
            for v, c in bad[: max(0, MAX_REPORT - len(errors))]:
                errors.append(
                    {
                        "layer": int(lp.index),
                        "layer_name": lp.name,
                        "tile": int(job.column_tile),
                        "row_tile": None if kind is None else int(c),
                        "image": int(ids[v // per_image]),
                        "vector": int(v),
                        "what": name,
                        "column": int(col0 + c) if kind is None else None,
                        "expected": int(exp[v, c]),
                        "actual": int(got[v, c]),
                    }
                )
        return bad_y, bad_s

    async def _bare_loops(tb: NetworkTB, n: int) -> dict:
        """Seconds per cycle of bare clock loops on the same top (the cosim cost floor)."""
        from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

        clk = tb.dut.clk
        rising, falling, readonly = RisingEdge(clk), FallingEdge(clk), ReadOnly()
        await falling
        t0 = time.perf_counter()
        for _ in range(n):
            await rising
        bare = (time.perf_counter() - t0) / n
        await falling
        t0 = time.perf_counter()
        for _ in range(n):
            await falling
            await readonly
        two = (time.perf_counter() - t0) / n
        sigs = [tb.dut.x__ready, tb.dut.dac__valid, tb.dut.o__valid, tb.dut.adc__ready]
        await falling
        t0 = time.perf_counter()
        for _ in range(n):
            await falling
            await readonly
            for sig in sigs:
                bool(sig.value)
        reads = (time.perf_counter() - t0) / n
        return {
            "bare_s_per_cycle": bare,
            "two_trigger_s_per_cycle": two,
            "two_trigger_4_reads_s_per_cycle": reads,
        }

    @cocotb.test()
    async def network(dut):
        """The whole network at level 4, compared job by job with level 3."""
        p = load_params()
        t_start = time.time()
        with open(p["job"], "rb") as fh:
            job = pickle.load(fh)
        t_unpickled = time.time()
        prog, x, images = job["prog"], job["x"], job["images"]
        corrupt, bs = job["corrupt"], int(job["batch_size"])
        nrtl, mrtl = NmpuRtlParams(**p["nmpu_rtl"]), MgmtRtlParams(**p["mgmt_rtl"])
        pv, pr, live = float(p["p_valid"]), float(p["p_ready"]), bool(job["live_tiles"])
        if (
            pv >= 1.0 and pr >= 1.0 and not live and not p.get("per_beat")
        ):  # nothing needs a per-clock decision
            ring = NetworkTopParams(nrtl, mrtl, **p["ring"])
            tb = RingNetworkTB(dut, nrtl, mrtl, int(p["seed"]), ring)
        else:  # random gaps/backpressure or live tiles: per-beat agents on the bypass
            dut.bypass.value = 1
            dut.go.value = 0
            tb = NetworkTB(dut, nrtl, mrtl, int(p["seed"]), pv, pr)
            tb.tile.live_tiles = live
        t_tb = time.time()
        tb.start_clock()
        await tb.reset()
        t_loaded = time.time()
        t0 = time.perf_counter()
        traces = [LayerTrace(lp.name) for lp in prog.layers]
        stats = [
            {
                "name": lp.name,
                "rtl_cycles": 0,
                "ideal_cycles": 0,
                "jobs": 0,
                "activations": 0,
                "requests": 0,
                "live_calls": 0,
            }
            for lp in prog.layers
        ]
        errors: list[dict] = []
        compared = status_compared = mismatches = dac_mismatches = 0
        outs = []
        failed = False
        for b0 in range(0, len(x), bs):
            ids = images[b0 : b0 + bs]
            h = input_codes(prog, x[b0 : b0 + bs])
            for i, lp in enumerate(prog.layers):
                lj = layer_jobs(prog, i, h, ids)
                results = []
                for cj in lj.jobs:
                    rec = [RecordingTile(t) for t in cj.tiles]
                    gold = golden_periphery(dataclasses.replace(cj, tiles=rec))
                    c = corrupt if corrupt is not None and int(corrupt["layer"]) == i else None
                    try:
                        rtl, cyc, ideal = await tb.run_job(cj, rec, c, gold)
                    except AssertionError as exc:  # a timeout: the RTL stopped answering
                        errors.append(
                            {
                                "layer": int(lp.index),
                                "layer_name": lp.name,
                                "tile": int(cj.column_tile),
                                "timeout": str(exc),
                            }
                        )
                        failed = True
                        mismatches += 1
                        break
                    by, bsx = _compare(cj, lp, rtl, gold, lj, ids, errors)
                    compared += rtl.y.size
                    status_compared += rtl.e.size
                    mismatches += by + bsx
                    # a DAC request other than the golden controller's is a mismatch too
                    dac_bad = tb.tile.dac_mismatches
                    dac_mismatches += len(dac_bad)
                    mismatches += len(dac_bad)
                    per_image = len(lj.rows) // max(1, len(ids))
                    for v, t, k in dac_bad[: max(0, MAX_REPORT - len(errors))]:
                        errors.append(
                            {
                                "layer": int(lp.index),
                                "layer_name": lp.name,
                                "tile": int(cj.column_tile),
                                "row_tile": int(t),
                                "image": int(ids[min(v, len(lj.rows) - 1) // per_image]),
                                "vector": int(v),
                                "what": f"DAC request (iteration {k})",
                                "column": None,
                                "expected": "the golden controller's codes",
                                "actual": "different codes or an extra request",
                            }
                        )
                    st = stats[i]
                    st["rtl_cycles"] += cyc
                    st["jobs"] += 1
                    st["ideal_cycles"] += ideal
                    st["activations"] += rtl.y.size
                    st["requests"] += tb.tile.requests
                    st["live_calls"] += tb.tile.live_calls
                    results.append(rtl)
                if failed or mismatches:
                    failed = True
                    break
                h = lj.finish(results, traces[i])
            if failed:
                break
            outs.append(h)
        for st, tr in zip(stats, traces, strict=True):
            its = np.concatenate(tr.iters) if tr.iters else np.zeros(0, dtype=np.int64)
            sat = np.concatenate(tr.sat) if tr.sat else np.zeros(0, dtype=bool)
            st["bm_iterations_hist"] = np.bincount(
                its, minlength=mrtl.bound_max_iter_reset + 1
            ).tolist()
            st["adc_sat_rate"] = float(np.mean(sat)) if sat.size else 0.0
        result = {
            "activations_compared": compared,
            "status_compared": status_compared,
            "mismatches": mismatches,
            "dac_mismatches": dac_mismatches,
            "errors": errors,
            "rtl_cycles": sum(s["rtl_cycles"] for s in stats),
            "ideal_cycles": sum(s["ideal_cycles"] for s in stats),
            "layers": stats,
            "sim_wall_s": time.perf_counter() - t0,
            "loop_s": tb.loop_s,
            "startup": {
                "module_imported": _IMPORTED_AT,
                "test_started": t_start,
                "unpickled": t_unpickled,
                "tb_built": t_tb,
                "program_loaded": t_loaded,
            },
            "y_last": None if failed else np.concatenate(outs).tolist(),
        }
        n_bare = int(p.get("bare_cycles", 0))
        if n_bare and not failed:
            result.update(await _bare_loops(tb, n_bare))
        save_result(result)
        assert not failed, "level 4 differs from level 3:\n" + "\n".join(
            format_mismatch(e) if "what" in e else str(e) for e in errors
        )
