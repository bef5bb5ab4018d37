"""A tiny stream component and its cocotb bench: proves the cosim infrastructure.

``PairAdder`` takes beats ``{a, b}`` (signed ``width``) and emits ``a + b`` (signed
``width + 1``) one register stage later, honouring backpressure.  It is deliberately
trivial so that a failure of ``tests/test_cosim_infra.py`` points at the runner, the
stream agents or the payload packing, not at a design.
"""

from __future__ import annotations

import cocotb
import numpy as np
from aimcflow.cosim.packing import PayloadCodec
from aimcflow.cosim.runner import load_params, save_result
from aimcflow.cosim.streams import TB, Scoreboard, StreamSink, StreamSource
from amaranth import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


class PairAdder(wiring.Component):
    """``o = i.a + i.b`` with one register stage; ``i.ready`` only when the stage can move."""

    def __init__(self, width: int = 8) -> None:
        self.width = width
        layout = data.StructLayout({"a": signed(width), "b": signed(width)})
        super().__init__(
            {"i": In(stream.Signature(layout)), "o": Out(stream.Signature(signed(width + 1)))}
        )

    def elaborate(self, platform):
        m = Module()
        move = self.o.ready | ~self.o.valid
        m.d.comb += self.i.ready.eq(move)
        with m.If(move):
            m.d.sync += [
                self.o.valid.eq(self.i.valid),
                self.o.payload.eq(self.i.payload.a + self.i.payload.b),
            ]
        return m


def golden(a: np.ndarray, b: np.ndarray, wrong_by: int = 0) -> np.ndarray:
    """``a + b``; ``wrong_by`` != 0 breaks it on purpose (tests the failure path)."""
    return a.astype(np.int64) + b.astype(np.int64) + wrong_by


# ---------------------------------------------------------------- cocotb side


class AdderTB(TB):
    def __init__(self, dut, width: int, seed: int, p_valid: float, p_ready: float):
        super().__init__(dut, seed)
        self.width = width
        self.src = self.add(StreamSource(dut, "i", self.rng, p_valid))
        self.snk = self.add(StreamSink(dut, "o", self.rng, p_ready))
        comp = PairAdder(width)
        self.in_codec = PayloadCodec(comp.i.payload.shape())
        self.out_codec = PayloadCodec(comp.o.payload.shape())

    def random_pairs(self, n: int) -> dict[str, np.ndarray]:
        lo, hi = -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        v = self.rng.integers(lo, hi, size=(2, n), endpoint=True)
        v[:, :4] = [[lo, hi, lo, hi], [lo, hi, hi, lo]]  # corners first
        return {"a": v[0], "b": v[1]}

    def check(
        self, sb: Scoreboard, x: dict[str, np.ndarray], wrong_by: int, n: int | None = None
    ) -> int:
        got = {"value": self.out_codec.unpack(self.snk.words)["value"]}
        return sb.check(got, {"value": golden(x["a"], x["b"], wrong_by)}, n)


@cocotb.test()
async def random_stream(dut):
    """Random pairs with random valid gaps and ready backpressure, a reset mid-stream."""
    p = load_params()
    n = int(p.get("vectors", 2000))
    tb = AdderTB(
        dut,
        int(p.get("width", 8)),
        int(p.get("seed", 1)),
        float(p.get("p_valid", 0.7)),
        float(p.get("p_ready", 0.6)),
    )
    sb = Scoreboard("PairAdder")
    tb.start_clock()
    await tb.reset()
    # phase 1: cut short by a reset while beats are in flight
    x = tb.random_pairs(n)
    tb.src.send(tb.in_codec.pack(x))
    await tb.run(lambda: len(tb.snk.words) >= n // 3, max_cycles=100 * n)
    wrong_by = int(p.get("wrong_by", 0))
    tb.check(sb, x, wrong_by, len(tb.snk.words))
    await tb.reset()
    tb.snk.words.clear()
    # phase 2: a fresh stream after the reset must match completely
    x = tb.random_pairs(n)
    tb.src.send(tb.in_codec.pack(x))
    cycles = await tb.run(lambda: len(tb.snk.words) >= n, max_cycles=100 * n)
    tb.check(sb, x, wrong_by)
    save_result(
        {
            "vectors": sb.compared,
            "mismatches": sb.mismatches,
            "cycles": cycles,
            "errors": sb.errors,
        }
    )
    assert sb.mismatches == 0, "\n".join(sb.errors)
