"""Share-masked bit-serial dot-product MAC: no register ever holds a weight or an activation.

Function: the same ``y = sum_i w[i] * x[i]`` as :mod:`aimcflow.rtl.plain_mac` (same
ports for ``w`` and ``x``), but the result is handed on still shared: ``y`` carries the four
share accumulators ``[A00, A01, A10, A11]`` (unsigned ``k`` bits each) with
``y = A00 + A01 + A10 + A11 mod 2**k`` read as a k-bit signed number
(:func:`aimcflow.models.periphery.secure_mac.recombine`).  Golden model:
:class:`aimcflow.models.periphery.secure_mac.SecureMacModel` (bit-exact, masks included).

Scheme (after the idea of Ashok et al., CICC 2024: compute on two shares, recombine only at
the output, no random-number generator in the loop)
-----------------------------------------------------------------------------------------
* Ring: ``Z / 2**k`` with ``k = acc_bits`` (22 for n = 64, 8 x 8 bit), so the exact result
  fits.  Every ``v`` (each weight, each activation) is held as ``v0 = v - v1``, ``v1``.
* Masks: two banks of xorshift64 generators (one for ``w``, one for ``x``), seeded ONCE
  from ``seed`` at reset (in silicon: a key from the PUF); each load steps its bank once,
  and the bank's bits, cut into ``n`` k-bit lanes, are the increment ``d``.  The share-1
  register accumulates it (``v1 <- v1 + d``) and ``v0 <- v - v1`` — so there is no fresh
  randomness per operation, only a one-time seeded deterministic generator.
* Computation: the product is bilinear, so ``w . x = sum_jk w_j . x_k``: four adder trees,
  each fed with ONE share of ``w`` and ONE share of ``x``, accumulate ``A_jk`` bit-serially
  over the k bits of ``x_k`` (MSB first, ``A <- 2A + sum_i w_j[i] x_k[i][b]``).  The ``x``
  share registers rotate, so after k cycles they hold their loaded values again.

Why additive rather than Boolean (XOR) shares: the dot product is linear over ``Z/2**k``
but not over GF(2); computing an integer sum of XOR-shared operands needs nonlinear
masked gadgets (Boolean-to-arithmetic conversion, masked adders) that each consume fresh
random bits per operation — exactly what this design must avoid.  For single bits the two
sharings coincide.

First-order argument (register-transition leakage)
--------------------------------------------------
Leakage model: each clock edge leaks the sum over registers of the Hamming distance
between the register's old and new values (what ``aimcflow tvla`` simulates).  A
first-order (univariate, mean) test sees only ``E[sum_r HD_r] = sum_r E[HD_r]``, so it
suffices that every single register's transition is distributed independently of the
secret:

1. ``w1``/``x1`` hold masks; the generator banks and ``d`` never see data.
2. ``v0 = v - v1`` with ``v1`` uniform and independent of ``v``: uniform, independent of
   ``v``.  On a reload, ``HD(v0_old, v0_new)``: if the previous value was different data,
   ``v0_old`` is uniform and independent; if it was the SAME value ``V`` (fixed class twice
   in a row), ``HD(V - r, V - r - d)`` with ``u = V - r`` uniform and ``d`` independent of
   ``u`` — still independent of ``V``.  (This is why the mask is accumulated additively:
   replacing ``r`` by an unrelated function of it would make this term depend on ``V``.)
3. A rotating ``x_k`` register's transition is a function of that one share only.
4. ``A_jk`` depends on ``(w_j, x_k)`` only: one share of each secret, jointly uniform and
   independent of ``(w, x)``; its clear at the next load is ``HW(A_jk)``, likewise.
5. State/counter registers are data independent.

Assumptions, stated honestly: (a) the leakage is per register: combinational glitches
and coupling between the two shares' wires are not modelled (each adder tree only mixes
one share of each operand, so its nets are also secret-independent, but the load
subtractor ``v - v1`` sees the plaintext input bus); (b) the plaintext ``w``/``x`` buses that
feed the loads are outside the protected boundary (the decryptor's and previous layer's
outputs); (c) the masks are pseudo-random: security is computational in the xorshift
generator, which is linear and would fall to an attacker who recovers its state — a real
chip would use a nonlinear generator or PUF-derived keys; (d) first order only: the
variance of the summed power depends on the secret in principle (the two shares of one
value leak jointly), which is what ``aimcflow tvla --order 2`` looks for (with ~8.5k
register bits toggling as noise it stayed at max|t| 3.5 after 10^6 traces here); (e) the four output shares must be consumed by a
masked next stage or recombined outside the assessed boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, wiring

from .plain_mac import MacParams, MacState, adder_tree, mac_signature


@dataclass(frozen=True)
class SecureMacParams(MacParams):
    """``MacParams`` plus the reset states of the two mask-generator banks (``w``, ``x``):
    ``generators`` nonzero 64-bit words each, expanded from the one-time seed by the golden
    model's ``rtl_mask_seeds``."""

    mask_seeds: tuple[tuple[int, ...], tuple[int, ...]] = field(kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        seeds = tuple(tuple(int(s) for s in bank) for bank in self.mask_seeds)
        object.__setattr__(self, "mask_seeds", seeds)
        if len(seeds) != 2 or any(
            len(bank) != self.generators or any(not 0 < s < (1 << 64) for s in bank)
            for bank in seeds
        ):
            raise ValueError(
                f"mask_seeds must hold two banks of {self.generators} nonzero 64-bit states"
            )

    @property
    def generators(self) -> int:
        return -(-self.n * self.acc_bits // 64)


def xorshift64(s):
    """Combinational xorshift64 (13, 7, 17) step of a 64-bit value."""
    s = (s ^ (s << 13))[:64]
    s = s ^ (s >> 7)
    return (s ^ (s << 17))[:64]


class SecureMac(wiring.Component):
    """Streams: ``w`` (n x signed w_bits), ``x`` (n x unsigned x_bits) in; ``y`` (4 shares,
    unsigned ``acc_bits`` each) out."""

    def __init__(self, params: SecureMacParams) -> None:
        self.params = params
        super().__init__(mac_signature(params, data.ArrayLayout(unsigned(params.acc_bits), 4)))

    def elaborate(self, platform):
        m = Module()
        p = self.params
        k = p.acc_bits
        gen_w = [Signal(64, name=f"gen_w{j}", init=s) for j, s in enumerate(p.mask_seeds[0])]
        gen_x = [Signal(64, name=f"gen_x{j}", init=s) for j, s in enumerate(p.mask_seeds[1])]
        d_w, d_x = Cat(*gen_w), Cat(*gen_x)
        w0 = [Signal(k, name=f"w0_{i}") for i in range(p.n)]
        w1 = [Signal(k, name=f"w1_{i}") for i in range(p.n)]
        x0 = [Signal(k, name=f"x0_{i}") for i in range(p.n)]
        x1 = [Signal(k, name=f"x1_{i}") for i in range(p.n)]
        acc = [Signal(k, name=f"a{j}{kk}") for j in range(2) for kk in range(2)]
        count = Signal(range(k + 1))
        state = Signal(MacState)

        def trees():
            sums = []
            for wj in (w0, w1):
                for xk in (x0, x1):
                    sums.append(adder_tree([wj[i] & xk[i][-1].replicate(k) for i in range(p.n)], k))
            return sums

        m.d.comb += [self.y.payload[j].eq(acc[j]) for j in range(4)]

        with m.Switch(state):
            with m.Case(MacState.IDLE):
                m.d.comb += [self.w.ready.eq(1), self.x.ready.eq(1)]
                with m.If(self.w.valid):
                    m.d.sync += [g.eq(xorshift64(g)) for g in gen_w]
                    for i in range(p.n):
                        w1_new = (w1[i] + d_w[i * k : (i + 1) * k])[:k]
                        wi = self.w.payload[i].as_signed()
                        m.d.sync += [w1[i].eq(w1_new), w0[i].eq((wi - w1_new)[:k])]
                with m.If(self.x.valid):
                    m.d.sync += [g.eq(xorshift64(g)) for g in gen_x]
                    for i in range(p.n):
                        x1_new = (x1[i] + d_x[i * k : (i + 1) * k])[:k]
                        m.d.sync += [x1[i].eq(x1_new), x0[i].eq((self.x.payload[i] - x1_new)[:k])]
                    m.d.sync += [a.eq(0) for a in acc]
                    m.d.sync += [count.eq(k), state.eq(MacState.RUN)]
            with m.Case(MacState.RUN):
                m.d.sync += [
                    a.eq((Cat(Const(0, 1), a) + s)[:k]) for a, s in zip(acc, trees(), strict=True)
                ]
                m.d.sync += [r.eq(Cat(r[-1], r[:-1])) for r in (*x0, *x1)]
                m.d.sync += count.eq(count - 1)
                with m.If(count == 1):
                    m.d.sync += state.eq(MacState.DONE)
            with m.Default():
                m.d.comb += self.y.valid.eq(1)
                with m.If(self.y.ready):
                    m.d.sync += state.eq(MacState.IDLE)
        return m
