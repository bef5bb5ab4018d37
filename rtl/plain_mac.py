"""Unprotected bit-serial dot-product MAC: the side-channel baseline for ``secure_mac``.

``y = sum_i w[i] * x[i]`` over ``n`` lanes; ``w`` signed ``w_bits`` held in registers,
``x`` unsigned ``x_bits`` processed one bit per clock, MSB first, through an adder tree of
the selected weights into an exact ``acc_bits`` accumulator.  Golden model:
:func:`aimcflow.models.periphery.secure_mac.dot`.

Timing: ``w`` and ``x`` are accepted while idle (both in the same cycle is allowed; the
operation then uses the new weights); ``x_bits`` compute cycles follow; the result waits
on ``y`` until taken.  With ``y.ready`` high a dot product takes ``x_bits + 2`` cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out


@dataclass(frozen=True)
class MacParams:
    """``n`` lanes; ``w_bits`` signed weight width; ``x_bits`` unsigned activation width."""

    n: int = 64
    w_bits: int = 8
    x_bits: int = 8

    def __post_init__(self) -> None:
        if self.n < 1 or self.w_bits < 2 or self.x_bits < 1:
            raise ValueError("need n >= 1, w_bits >= 2, x_bits >= 1")

    @property
    def acc_bits(self) -> int:
        """Exact signed accumulator width (same rule as the golden model's ``acc_bits``)."""
        most_negative = self.n * (1 << (self.w_bits - 1)) * ((1 << self.x_bits) - 1)
        return most_negative.bit_length() + 1


class MacState(enum.Enum, shape=2):
    IDLE = 0
    RUN = 1
    DONE = 2
    SPARE = 3  # unused code: keeps the Switch complete


def adder_tree(terms: list, width: int):
    """Balanced sum of ``terms`` truncated to ``width`` bits at every node (mod 2**width)."""
    terms = list(terms)
    while len(terms) > 1:
        nxt = [(terms[i] + terms[i + 1])[:width] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


def mac_signature(p: MacParams, y_shape) -> dict:
    """Ports of both MACs: streams ``w`` (n x signed w_bits) and ``x`` (n x unsigned x_bits)
    in, ``y`` (payload ``y_shape``) out."""
    return {
        "w": In(stream.Signature(data.ArrayLayout(signed(p.w_bits), p.n))),
        "x": In(stream.Signature(data.ArrayLayout(unsigned(p.x_bits), p.n))),
        "y": Out(stream.Signature(y_shape)),
    }


class PlainMac(wiring.Component):
    """Streams: ``w`` (n x signed w_bits), ``x`` (n x unsigned x_bits) in; ``y`` (signed
    ``acc_bits``) out."""

    def __init__(self, params: MacParams = MacParams()) -> None:
        self.params = params
        super().__init__(mac_signature(params, signed(params.acc_bits)))

    def elaborate(self, platform):
        m = Module()
        p = self.params
        k = p.acc_bits
        w = [Signal(signed(p.w_bits), name=f"w{i}") for i in range(p.n)]
        # activations rotate (not shift) so the register returns to its loaded value
        x = [Signal(p.x_bits, name=f"x{i}") for i in range(p.n)]
        acc = Signal(signed(k))
        count = Signal(range(p.x_bits + 1))
        state = Signal(MacState)

        msb = [xi[-1] for xi in x]
        partial = adder_tree(
            [Cat(w[i], w[i][-1].replicate(k - p.w_bits)) & msb[i].replicate(k) for i in range(p.n)],
            k,
        )
        m.d.comb += self.y.payload.eq(acc)

        with m.Switch(state):
            with m.Case(MacState.IDLE):
                m.d.comb += [self.w.ready.eq(1), self.x.ready.eq(1)]
                with m.If(self.w.valid):
                    m.d.sync += [w[i].eq(self.w.payload[i]) for i in range(p.n)]
                with m.If(self.x.valid):
                    m.d.sync += [x[i].eq(self.x.payload[i]) for i in range(p.n)]
                    m.d.sync += [acc.eq(0), count.eq(p.x_bits), state.eq(MacState.RUN)]
            with m.Case(MacState.RUN):
                m.d.sync += [acc.eq((Cat(Const(0, 1), acc) + partial)[:k]), count.eq(count - 1)]
                m.d.sync += [x[i].eq(Cat(x[i][-1], x[i][:-1])) for i in range(p.n)]
                with m.If(count == 1):
                    m.d.sync += state.eq(MacState.DONE)
            with m.Default():
                m.d.comb += self.y.valid.eq(1)
                with m.If(self.y.ready):
                    m.d.sync += state.eq(MacState.IDLE)
        return m
