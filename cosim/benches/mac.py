"""cocotb bench of ``rtl/plain_mac.py`` and ``rtl/secure_mac.py``, bit-exact vs their golden
models in :mod:`aimcflow.models.periphery.secure_mac`.

Weights and activations stream in with random valid gaps (new weights before a random
subset of the activation vectors: weights are stationary in between), results are taken
with random backpressure.  A handshake monitor records the order in which the DUT accepted
``w`` and ``x`` beats (a ``w`` taken in the same cycle as an ``x`` counts first, which is
what the RTL does); the scoreboard replays exactly that order through the golden model —
for ``secure_mac`` including the generator banks, the Boolean re-masking and the
Goubin conversions (whose results feed the outputs), so every one of the four output shares
is compared, and their recombination is compared with the plain dot product.
"""

from __future__ import annotations

import cocotb
import numpy as np
from aimcflow.cosim.packing import PayloadCodec
from aimcflow.cosim.runner import load_params, save_result
from aimcflow.cosim.streams import TB, CycleCheck, Scoreboard, StreamSink, StreamSource
from aimcflow.models.periphery import secure_mac as golden
from aimcflow.rtl.plain_mac import MacParams, PlainMac
from aimcflow.rtl.secure_mac import SecureMac, SecureMacParams


class HandshakeLog:
    """Records accepted ``w`` / ``x`` beats in acceptance order."""

    def __init__(self, dut) -> None:
        self.dut = dut
        self.events: list[tuple[str, int]] = []

    def drive(self) -> None:
        pass

    def sample(self) -> None:
        d = self.dut
        if d.w__valid.value and d.w__ready.value:
            self.events.append(("w", d.w__payload.value.to_unsigned()))
        if d.x__valid.value and d.x__ready.value:
            self.events.append(("x", d.x__payload.value.to_unsigned()))

    def flush(self) -> None:
        self.events.clear()


class MacTB(TB):
    def __init__(
        self,
        dut,
        design: str,
        n: int,
        seed: int,
        p_valid: float,
        p_ready: float,
        mask_key: int = golden.SecureMacSpec.seed,
    ):
        super().__init__(dut, seed)
        self.design, self.n = design, n
        self.spec = golden.SecureMacSpec(n=n, seed=mask_key)
        if design == "secure_mac":  # the key port, held from before reset on
            dut.seed.value = mask_key
        if design == "plain_mac":
            comp = PlainMac(MacParams(n=n))
        else:
            comp = SecureMac(SecureMacParams(n=n))
        self.params = comp.params
        self.w_codec = PayloadCodec(comp.w.payload.shape())
        self.x_codec = PayloadCodec(comp.x.payload.shape())
        self.y_codec = PayloadCodec(comp.y.payload.shape())
        self.log = self.add(HandshakeLog(dut))
        self.w_src = self.add(StreamSource(dut, "w", self.rng, p_valid))
        self.x_src = self.add(StreamSource(dut, "x", self.rng, p_valid))
        self.y_snk = self.add(StreamSink(dut, "y", self.rng, p_ready))
        # the docstrings' promises, every cycle: operands are taken only while idle (never
        # while a result waits) and a result stays offered until taken
        names = ("w__ready", "x__ready", "y__valid", "y__ready")
        self.promise = self.add(
            CycleCheck(
                dut,
                {k: getattr(dut, k) for k in names},
                {
                    "operands only while idle": lambda n, _: (
                        not (n["y__valid"] and (n["w__ready"] or n["x__ready"]))
                    ),
                    "result held until taken": lambda n, p: (
                        p is None or not (p["y__valid"] and not p["y__ready"]) or n["y__valid"] == 1
                    ),
                },
            )
        )

    def stimulus(self, ops: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        w = self.rng.integers(-128, 127, size=(ops, n), endpoint=True)
        x = self.rng.integers(0, 255, size=(ops, n), endpoint=True)
        w[0], x[0] = -128, 255  # most negative product in every lane
        w[1], x[1] = 127, 255
        w[2], x[2] = 0, 0
        return w, x

    def expected(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Replay the accepted beats through the golden model: per result, the share
        vector (secure) or value (plain), and the plain dot product."""
        outs, dots = [], []
        model = golden.SecureMacModel(self.spec) if self.design == "secure_mac" else None
        w_cur = np.zeros(self.n, dtype=np.int64)
        for kind, word in self.log.events:
            if kind == "w":
                w_cur = self.w_codec.unpack([word])[""][0]
                if model:
                    model.load_w(w_cur)
            else:
                x = self.x_codec.unpack([word])[""][0]
                dots.append(golden.dot(w_cur, x))
                outs.append(model.mac(x) if model else golden.dot(w_cur, x))
        return outs, dots


@cocotb.test()
async def random_ops(dut):
    """Random weights/activations and corner vectors, random gaps and backpressure."""
    p = load_params()
    design, n, ops = p["design"], int(p["n"]), int(p.get("ops", 300))
    tb = MacTB(
        dut,
        design,
        n,
        int(p.get("seed", 1)),
        float(p.get("p_valid", 0.7)),
        float(p.get("p_ready", 0.6)),
        int(p.get("mask_key", golden.SecureMacSpec.seed)),
    )
    tb.start_clock()
    await tb.reset()
    w, x = tb.stimulus(ops)
    new_w = tb.rng.random(ops) < 0.5
    new_w[:3] = True
    for i in range(ops):
        if new_w[i]:
            tb.w_src.send(tb.w_codec.pack({"": w[i : i + 1]}))
        tb.x_src.send(tb.x_codec.pack({"": x[i : i + 1]}))
    per_op = tb.spec.cycles if design == "secure_mac" else golden.plain_cycles(tb.params.x_bits)
    # random gaps (p_valid) and backpressure (p_ready) stretch each op several-fold
    cycles = await tb.run(lambda: len(tb.y_snk.words) == ops, ops * per_op * 8 + 100)
    outs, dots = tb.expected()
    got = next(iter(tb.y_codec.unpack(tb.y_snk.words).values()))
    sb = Scoreboard(design)
    if design == "secure_mac":
        sb.check({"shares": got}, {"shares": np.array(outs)})
        recombined = golden.recombine(got, tb.params.acc_bits)
        sb.check({"y": recombined}, {"y": np.array(dots)})
    else:
        sb.check({"y": got}, {"y": np.array(dots)})
    save_result(
        {
            "ops": ops,
            "compared": sb.compared,
            "mismatches": sb.mismatches,
            "cycles": cycles,
            "loads": len(tb.log.events),
            "handshake_checked": tb.promise.checked,
            "handshake_violations": tb.promise.violations,
        }
    )
    assert sb.mismatches == 0, "\n".join(sb.errors)
