"""cocotb bench of the stochastic pulse generator (``rtl/spg.py``) and the Python door to it.

Python side (imported by pytest, ``aimcflow vectors spg`` and ``aimcflow train``):

* :func:`build_spg` builds (or reuses) the Verilated SPG for given lane counts and widths.
* :func:`simulate` streams given updates through it (one seed load per segment) and
  returns the RTL's pulse trains as a golden-model-shaped :class:`SpgOutput`.

cocotb side: one test, ``stream_updates``.  It reads an ``.npz`` of segments (seed, then
V updates), drives the seed and update streams with random valid gaps and the slot stream
with random backpressure, records every slot, and writes the raw slots to an ``.npz``.
With ``check`` set, a scoreboard compares each segment with the golden model
(``models/periphery/spg.py``) bit for bit inside the bench.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import cocotb
import numpy as np
from aimcflow.cosim.packing import PayloadCodec
from aimcflow.cosim.rtlparams import spg_rtl_params
from aimcflow.cosim.runner import build_component, load_params, save_result
from aimcflow.cosim.streams import TB, CycleCheck, Scoreboard, StreamSink, StreamSource, top_bit
from aimcflow.models.periphery import spg as golden
from aimcflow.rtl.spg import SpgRtlParams, StochasticPulseGenerator, slot_layout, update_layout

TOPLEVEL = "spg"
MODULE = "aimcflow.cosim.benches.spg"


def rtl_params(rows: int, cols: int, gp: golden.SpgParams) -> SpgRtlParams:
    """RTL parameters of an R x C generator with the golden widths ``gp`` (the mapping
    lives in ``cosim/rtlparams.py``, with every other block's)."""

    return spg_rtl_params(rows, cols, gp)


def build_spg(params: SpgRtlParams, sim: str = "verilator"):
    """The cached Verilator (or Icarus) build of one SPG configuration."""

    return build_component(
        StochasticPulseGenerator(params),
        TOPLEVEL,
        name=f"spg-r{params.rows}c{params.cols}",
        sim=sim,
    )


def _unpack_slots(params: SpgRtlParams, words: np.ndarray) -> dict[str, np.ndarray]:
    codec = PayloadCodec(slot_layout(params))
    f = codec.unpack([int(w) for w in words])
    return {k: f[k].astype(np.uint8) for k in ("row", "col", "row_neg", "col_neg", "last")}


def simulate(
    params: SpgRtlParams,
    segments: list[dict],
    *,
    check: bool = False,
    p_valid: float = 1.0,
    p_ready: float = 1.0,
    seed: int = 1,
    build=None,
):
    """Run segments ``{seed, x (V,R), d (V,C), gain_x (V), gain_d (V), bl, deterministic
    (V) bool}`` through the Verilated SPG, in order; returns ``(outputs, run_result)`` with
    one :class:`golden.SpgOutput` per segment, decoded from the RTL's slots.

    The RTL's lane states are reloaded at the start of each segment (its seed)."""
    b = build or build_spg(params)
    with tempfile.TemporaryDirectory(prefix="spg-") as tmp:
        src = Path(tmp) / "in.npz"
        dst = Path(tmp) / "out.npz"
        arrays = {}
        for k, s in enumerate(segments):
            for f in ("x", "d", "gain_x", "gain_d", "deterministic"):
                arrays[f"{k}_{f}"] = np.asarray(s[f], dtype=np.int64)
            arrays[f"{k}_seed"] = np.int64(s["seed"])
            arrays[f"{k}_bl"] = np.int64(s["bl"])
        np.savez(src, **arrays)
        res = b.run(
            MODULE,
            {
                "params": asdict(params),
                "segments": len(segments),
                "in_npz": str(src),
                "out_npz": str(dst),
                "check": check,
                "p_valid": p_valid,
                "p_ready": p_ready,
                "seed": seed,
            },
            testcase="stream_updates",
        )
        with np.load(dst) as z:
            words = z["slots"]
    slots = _unpack_slots(params, words)
    outs, at = [], 0
    for s in segments:
        V, bl = len(s["x"]), int(s["bl"])
        n = V * bl
        sl = {k: v[at : at + n] for k, v in slots.items()}
        at += n
        rneg = sl["row_neg"].reshape(V, bl, -1)[:, 0]
        cneg = sl["col_neg"].reshape(V, bl, -1)[:, 0]
        outs.append(
            golden.SpgOutput(
                sl["row"].reshape(V, bl, -1),
                sl["col"].reshape(V, bl, -1),
                np.where(rneg == 1, -1, 1).astype(np.int64),
                np.where(cneg == 1, -1, 1).astype(np.int64),
            )
        )
        last = sl["last"].reshape(V, bl)
        if not (np.all(last[:, -1] == 1) and np.all(last[:, :-1] == 0)):
            raise AssertionError("SPG 'last' flag is not on exactly the final slot of each update")
    return outs, res


def golden_segment(params: SpgRtlParams, s: dict) -> golden.SpgOutput:
    """The golden model's trains for one segment (fresh seed load, updates in order)."""
    gp = golden.SpgParams(
        params.value_bits, params.gain_bits, params.gain_frac, params.prob_bits, params.max_bl
    )
    gen = golden.PulseGenerator(params.rows, params.cols, int(s["seed"]), gp)
    det = np.asarray(s["deterministic"], dtype=bool)
    if not det.any() or det.all():
        return gen.generate(
            s["x"], s["d"], s["gain_x"], s["gain_d"], int(s["bl"]), bool(det.all()) and det.size > 0
        )
    outs = [
        gen.generate(
            s["x"][v : v + 1],
            s["d"][v : v + 1],
            s["gain_x"][v : v + 1],
            s["gain_d"][v : v + 1],
            int(s["bl"]),
            bool(det[v]),
        )
        for v in range(len(det))
    ]
    return golden.SpgOutput(
        *(
            np.concatenate([getattr(o, f) for o in outs])
            for f in ("row_pulses", "col_pulses", "row_sign", "col_sign")
        )
    )


# ---------------------------------------------------------------- cocotb side


class SpgTB(TB):
    """Seed and update sources, slot sink; the scoreboard calls the golden model."""

    def __init__(self, dut, params: SpgRtlParams, seed: int, p_valid: float, p_ready: float):
        super().__init__(dut, seed)
        self.params = params
        self.seed_src = self.add(StreamSource(dut, "seed", self.rng, p_valid))
        self.upd_src = self.add(StreamSource(dut, "i", self.rng, p_valid))
        self.snk = self.add(StreamSink(dut, "o", self.rng, p_ready))
        self.upd_codec = PayloadCodec(update_layout(params))
        # the module docstring's promises, every cycle: a seed only while idle; an update
        # while idle (no seed offered) or as the last slot is taken, never otherwise; an
        # update's slots one per clock (a stall only delays them)
        sig = {k: getattr(dut, k) for k in ("seed__valid", "seed__ready", "i__ready")}
        sig |= {"o_v": dut.o__valid, "o_r": dut.o__ready, "last": top_bit("o__payload")}
        self.promise = self.add(
            CycleCheck(
                dut,
                sig,
                {
                    "seed.ready = idle": lambda n, _: n["seed__ready"] == 1 - n["o_v"],
                    "i.ready promise": lambda n, _: (
                        n["i__ready"]
                        == int(
                            (not n["o_v"] and not n["seed__valid"])
                            or (n["o_v"] and n["last"] and n["o_r"])
                        )
                    ),
                    "slots one per clock": lambda n, p: (
                        p is None
                        or not (p["o_v"] and not (p["o_r"] and p["last"]))
                        or n["o_v"] == 1
                    ),
                },
            )
        )

    async def segment(self, s: dict) -> None:
        """Load the segment's seed, then stream its updates; wait for every slot."""
        self.seed_src.send([int(s["seed"])])
        await self.run(lambda: self.seed_src.idle, max_cycles=10_000)
        V, bl = len(s["x"]), int(s["bl"])
        beats = {
            "x": s["x"],
            "d": s["d"],
            "gain_x": s["gain_x"],
            "gain_d": s["gain_d"],
            "bl": np.full(V, bl),
            "deterministic": s["deterministic"],
        }
        self.upd_src.send(self.upd_codec.pack(beats, V))
        target = len(self.snk.words) + V * bl
        await self.run(lambda: len(self.snk.words) >= target, max_cycles=50 * V * bl + 1000)


@cocotb.test()
async def stream_updates(dut):
    """Segments from an .npz through the DUT; raw slots to an .npz; optional scoreboard."""
    p = load_params()
    params = SpgRtlParams(**p["params"])
    tb = SpgTB(
        dut,
        params,
        int(p.get("seed", 1)),
        float(p.get("p_valid", 1.0)),
        float(p.get("p_ready", 1.0)),
    )
    with np.load(p["in_npz"]) as z:
        segs = [
            {
                f: z[f"{k}_{f}"]
                for f in ("x", "d", "gain_x", "gain_d", "deterministic", "seed", "bl")
            }
            for k in range(int(p["segments"]))
        ]
    tb.start_clock()
    await tb.reset()
    sb = Scoreboard("spg")
    cycles = 0
    for s in segs:
        start = len(tb.snk.words)
        c0 = tb.cycle
        await tb.segment(s)
        cycles += tb.cycle - c0
        if p.get("check"):
            got = _unpack_slots(params, np.array(tb.snk.words[start:], dtype=object))
            exp = golden_segment(params, s)
            V, bl = len(s["x"]), int(s["bl"])
            sb.check(
                {
                    "row": got["row"].reshape(V, -1),
                    "col": got["col"].reshape(V, -1),
                    "row_neg": got["row_neg"].reshape(V, bl, -1)[:, 0],
                    "col_neg": got["col_neg"].reshape(V, bl, -1)[:, 0],
                },
                {
                    "row": exp.row_pulses.reshape(V, -1),
                    "col": exp.col_pulses.reshape(V, -1),
                    "row_neg": (exp.row_sign < 0).astype(np.uint8),
                    "col_neg": (exp.col_sign < 0).astype(np.uint8),
                },
            )
    np.savez(p["out_npz"], slots=np.array([str(w) for w in tb.snk.words]))
    save_result(
        {
            "updates": sb.compared,
            "mismatches": sb.mismatches,
            "cycles": cycles,
            "slots": len(tb.snk.words),
            "errors": sb.errors,
            "handshake_checked": tb.promise.checked,
            "handshake_violations": tb.promise.violations,
        }
    )
    assert sb.mismatches == 0, "\n".join(sb.errors)
