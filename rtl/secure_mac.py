"""Share-masked bit-serial dot-product MAC: weights and activations are held as two Boolean
shares and never appear in a register or a named net.

Function: the same ``y = sum_i w[i] * x[i]`` as :mod:`aimcflow.rtl.plain_mac` (same
ports for ``w`` and ``x``), but the result is handed on still shared: ``y`` carries the four
share accumulators ``[A00, A01, A10, A11]`` (unsigned ``k`` bits each) with
``y = A00 + A01 + A10 + A11 mod 2**k`` read as a k-bit signed number
(:func:`aimcflow.models.periphery.secure_mac.recombine`).  Golden model:
:class:`aimcflow.models.periphery.secure_mac.SecureMacModel` (bit-exact: shares, gammas,
conversions, and the expansion of the mask key into the generator states).

Key port: ``seed`` (64 bits; in silicon the PUF key) must be stable from reset release
until ``w`` and ``x`` become ready: for ``seeding_cycles`` clocks after reset the MAC
expands it (SplitMix64, two clocks per generator) into its four generator banks, and only
then accepts operands.  No mask state is a reset constant of the netlist.

Scheme (after Ashok et al., CICC 2024: compute on two Boolean shares, recombine only at the
output, no random-number generator in the loop)
-----------------------------------------------------------------------------------------
* Width: ``k = acc_bits`` (22 for n = 64, 8 x 8 bit), so the exact result fits mod 2**k.
  Every value ``v`` (a weight sign-extended, an activation zero-extended to k bits) is
  held as Boolean shares ``v = b0 ^ b1``.
* Re-masking on load: ``b1 <- b1 ^ d``, ``b0 <- v ^ b1_new``.  ``d`` is the state of the
  operand's *d bank* (xorshift64 generators, cut into n k-bit lanes), which steps once.
* Boolean-to-arithmetic conversion (Goubin, CHES 2001), one cycle after the load
  (state CONVERT), per lane: with ``x' = b0``, ``r = b1`` and ``g`` the lane's k bits of
  the operand's *gamma bank*,
  ``A = ((x' ^ g) - g) ^ x' ^ ((x' ^ (r ^ g)) - (r ^ g))  (mod 2**k)`` gives
  ``v = A + r (mod 2**k)``; ``(A, b1)`` are arithmetic shares of ``v``.  The gamma bank is a
  separate bank per operand (not the next bits of the d bank), and it steps on the same edge
  as the d bank, i.e. on every load: every new Boolean sharing is converted with a new
  gamma.  The weights are converted again before every dot product (they may have been
  reloaded); unchanged shares with an unchanged gamma reproduce the same ``A``.
* Computation: the product is bilinear, so ``w . x = sum_jk w_j . x_k`` over the
  arithmetic shares: four adder trees, each fed with ONE share of ``w`` and ONE share of
  ``x``, accumulate ``A_jk`` bit-serially over the k bits of ``x_k`` (MSB first,
  ``A <- 2A + sum_i w_j[i] x_k[i][b]``, the bit picked by a one-hot pointer).
* Cycles: load, convert, k compute cycles, hand-over: ``k + 3`` per dot product.

Why Boolean shares need a B2A step: the dot product is linear over ``Z/2**k`` but not over
GF(2).  ``sum_i w[i] x[i]`` of XOR-shared operands cannot be computed share by share with
integer adders (``(a ^ b) + c`` does not split into a function of ``a`` plus one of ``b``),
so the shares are converted to additive ones first; the integer trees then never see both
shares of one value.  Goubin's conversion does this without recombining: only ``A`` and
``r`` come out, and ``A = v - r`` is as random as ``r``.

First-order argument
--------------------
Leakage model: each clock edge leaks the summed Hamming distance between old and new values
of every register (``aimcflow tvla --power-model registers``) and, optionally, of every
named combinational net as well (``--power-model nets``: settled values, no glitches).  A
first-order (univariate, mean) test at one sample sees ``E[sum HD] = sum E[HD]``, so it
suffices that each single register's and net's transition is distributed independently of
the secret.  Below, bank states are treated as uniform and independent of each other and
of the data (the assumption (c) makes explicit).

1. Goubin's conversion with one uniform ``g`` independent of ``(x', r)``: his Theorem 1 is
   that ``Phi(r) = (x' ^ r) - r`` is affine over GF(2) in ``r``, so
   ``A = Phi(r) = Phi(g) ^ Phi(r ^ g) ^ Phi(0)`` with ``Phi(0) = x'``.  The first half
   (``x'^g``, ``(x'^g)-g``, ``^x'``) depends only on ``(x', g)``, the second
   (``r^g``, ``x'^r^g = v^g``, ``(v^g)-(r^g)``) only on ``(v ^ g, r ^ g)``; both pairs are
   uniform and independent of ``v`` (``x' = v ^ r`` with ``r`` uniform; ``g`` uniform), and
   ``A = v - r`` is uniform.  One gamma per conversion is enough; no fresh random bits per
   arithmetic operation.
2. No fresh randomness per operation, no TRNG: ``d`` and ``g`` come from four banks of
   xorshift64 generators loaded after reset from ONE key on the ``seed`` port (in silicon
   the PUF key) and stepped only when a new operand is loaded.  They are a deterministic
   expansion of the seed, like the d masks of the original design; nothing is drawn per
   multiply or per adder.
3. Register transitions across a load: ``HD(b1, b1 ^ d) = HW(d)``;
   ``HD(b0_old, b0_new) = HW(v_old ^ v_new ^ d)`` - independent of the values because
   ``d`` is, also when the SAME value is loaded twice (then ``HW(d)``).  ``A`` moves from
   ``v_old - r`` to ``v_new - (r ^ d)``: ``r ^ d`` is uniform and independent of ``r``, so
   the new ``A`` is uniform and independent of the old one (and of both values), including
   ``v_new = v_old``.  The accumulators hold functions of one share of each operand; their
   clear at the next load leaks ``HW(A_jk)``, likewise.  Generator, bit-pointer and state
   registers never see data.
4. Net transitions (nets model): the conversion nets are functions of ``(b0, b1, g)``, and
   these change together: a load changes ``b0``, ``b1`` and steps the gamma bank on one
   edge, so before and after the edge the nets are two conversions with independent
   gammas.  Keeping ``g`` across a load would not do: ``x'^r^g = v ^ g`` would move by
   ``v_old ^ v_new``; neither would taking ``g`` from the d bank (``g`` = the next ``d``
   makes ``x'^g`` before the load and ``b0`` after it share their mask).  Within a
   conversion with ``(b0, b1)`` fixed and only ``g`` changing, every net is a function of
   ``(b0, g)`` or ``(b1, g)`` or ``A ^`` such a function, so the transitions are
   independent of ``v``.  This is why x is consumed by a bit select, not by rotating
   ``xb1`` as before: rotation would re-run the conversion on ``(b0, rot(b1))`` with the
   same gamma.
5. The trees mix one share of each operand only, so their nets (unnamed, not in the nets
   model) are also secret-independent at first order.

Assumptions, stated honestly: (a) the plaintext ``w``/``x`` load buses and the XOR
``v ^ b1_new`` at the input of ``b0`` are outside the protected boundary (the decryptor's
and previous layer's outputs); (b) glitches and coupling are not modelled: Goubin's
subtractors see ``x'`` and ``r ^ g`` at once and in real CMOS their transient values could
combine shares; ``--power-model nets`` sees settled values only; (c) the masks are
pseudo-random: security is computational in the xorshift generators, which are LINEAR over
GF(2) - successive states of a bank are linear functions of each other, and an attacker
who recovers a bank's 64-bit states (e.g. by a higher-order attack) can unmask everything;
a real chip would use a nonlinear generator or PUF-derived keys; (d) first order only: the
two shares of one value leak jointly in the summed power of one edge (on a reload of the
same value ``HD(b0) = HD(b1) = HW(d)``, perfectly correlated), which ``aimcflow tvla
--order 2`` finds: max|t| 20.3 (weight) and 7.4 (activation) after 10^6 traces here,
crossing 4.5 after about 7e4 and 4e5 traces - expected of two-share masking, and the
reason higher-order security needs more shares; (e) the four output shares must be
consumed by a masked next stage or recombined outside the assessed boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In

from .plain_mac import MacParams, adder_tree, mac_signature

BANK_NAMES = ("dw", "dx", "gw", "gx")  # d of w, d of x, gamma of w, gamma of x


@dataclass(frozen=True)
class SecureMacParams(MacParams):
    """``MacParams``; the generator banks (four of ``generators`` 64-bit xorshift states, in
    the order ``BANK_NAMES``) are loaded from the ``seed`` port after reset."""

    @property
    def generators(self) -> int:
        return -(-self.n * self.acc_bits // 64)

    @property
    def seeding_cycles(self) -> int:
        """Clocks from reset release until ``w``/``x`` are ready: two per generator."""
        return 2 * len(BANK_NAMES) * self.generators


class SecureMacState(enum.Enum, shape=3):
    IDLE = 0
    CONVERT = 1  # Boolean-to-arithmetic conversion of both operands is registered
    RUN = 2
    DONE = 3
    SEED = 4  # after reset: the generator banks are loaded from the seed port


# SplitMix64 (Steele, Lea, Flood 2014): the seed expansion of the golden model's
# ``generator_seeds``, in hardware
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
SPLITMIX_M1 = 0xBF58476D1CE4E5B9
SPLITMIX_M2 = 0x94D049BB133111EB
SEED_ROTATE = 20  # key bits rotated left by 20; bank index at bit 16, generator index below


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
        ports = mac_signature(params, data.ArrayLayout(unsigned(params.acc_bits), 4))
        # the mask key (in silicon from the PUF): must be stable from reset release until
        # w and x become ready (``seeding_cycles``); read only during that phase
        ports["seed"] = In(64)
        super().__init__(ports)

    def b2a(self, m: Module, name: str, x_masked: Value, r: Value, gamma: Value) -> Value:
        """Goubin's conversion of one lane (``x_masked ^ r`` = the value): returns ``A`` with
        ``A + r`` = the value mod 2**k.  Every intermediate is a named net (``{name}_t0`` ...)
        so the ``nets`` power model of ``aimcflow tvla`` sees it; the equations and names are
        those of the golden model's ``goubin_b2a``."""
        k = self.params.acc_bits
        nets = {
            key: Signal(k, name=f"{name}_{key}")
            for key in ("rg", "t0", "t1", "t2", "t3", "t4", "a")
        }
        m.d.comb += [
            nets["rg"].eq(r ^ gamma),
            nets["t0"].eq(x_masked ^ gamma),
            nets["t1"].eq((nets["t0"] - gamma)[:k]),
            nets["t2"].eq(nets["t1"] ^ x_masked),
            nets["t3"].eq(x_masked ^ nets["rg"]),
            nets["t4"].eq((nets["t3"] - nets["rg"])[:k]),
            nets["a"].eq(nets["t2"] ^ nets["t4"]),
        ]
        return nets["a"]

    def seeding(self, m: Module, chain: list[Signal], state: Signal) -> None:
        """SEED state: generator ``i`` of the bank-major ``chain`` (bank ``b``, index ``j``)
        gets ``splitmix64(rotl(seed, 20) ^ (b << 16) ^ j)`` (1 if 0), the golden model's
        ``generator_seeds``.  One SplitMix64 in two halves (a register after the first
        multiply), two clocks per generator; each result shifts in at the end of the chain,
        so after ``len(chain)`` results generator 0 sits in ``chain[0]``."""
        g = self.params.generators
        idx = Signal(range(len(chain) + 1), name="seed_idx")
        half = Signal(name="seed_half")
        mid = Signal(64, name="seed_mid")
        bank, j = Signal(2, name="seed_bank"), Signal(range(g), name="seed_gen")
        m.d.comb += [bank.eq(idx // g), j.eq(idx % g)]
        key = Cat(self.seed[64 - SEED_ROTATE :], self.seed[: 64 - SEED_ROTATE])
        v = key ^ (bank << 16) ^ j
        z0 = (v + SPLITMIX_GAMMA)[:64]
        z1 = ((z0 ^ (z0 >> 30)) * SPLITMIX_M1)[:64]
        z2 = ((mid ^ (mid >> 27)) * SPLITMIX_M2)[:64]
        out = Signal(64, name="seed_out")
        m.d.comb += out.eq(z2 ^ (z2 >> 31))
        with m.If(state == SecureMacState.SEED):
            m.d.sync += half.eq(~half)
            with m.If(~half):
                m.d.sync += mid.eq(z1)
            with m.Else():
                m.d.sync += [a.eq(b) for a, b in zip(chain[:-1], chain[1:], strict=True)]
                m.d.sync += [chain[-1].eq(Mux(out == 0, 1, out)), idx.eq(idx + 1)]
                with m.If(idx == len(chain) - 1):
                    m.d.sync += state.eq(SecureMacState.IDLE)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        k, n = p.acc_bits, p.n
        banks = {
            bn: [Signal(64, name=f"gen_{bn}{j}") for j in range(p.generators)] for bn in BANK_NAMES
        }

        def lanes(bank: str) -> list[Value]:
            bits = Cat(*banks[bank])
            return [bits[i * k : (i + 1) * k] for i in range(n)]

        def shares(op: str) -> tuple[list[Signal], list[Signal], list[Signal]]:
            return tuple(
                [Signal(k, name=f"{op}{s}_{i}") for i in range(n)] for s in ("b0", "b1", "a")
            )

        wb0, wb1, wa = shares("w")
        xb0, xb1, xa = shares("x")
        acc = [Signal(k, name=f"acc{j}{kk}") for j in range(2) for kk in range(2)]
        # one-hot bit pointer, MSB first: selects the bit of x each compute cycle uses
        bit = Signal(k, name="bit")
        state = Signal(SecureMacState, init=SecureMacState.SEED)
        self.seeding(m, [g for bn in BANK_NAMES for g in banks[bn]], state)

        def load(b0: list[Signal], b1: list[Signal], values: list[Value], op: str) -> None:
            """Boolean re-masking: b1 <- b1 ^ d, b0 <- v ^ b1_new; the op's banks step."""
            m.d.sync += [g.eq(xorshift64(g)) for g in (*banks["d" + op], *banks["g" + op])]
            for i, (d, v) in enumerate(zip(lanes("d" + op), values, strict=True)):
                b1_new = b1[i] ^ d
                m.d.sync += [b1[i].eq(b1_new), b0[i].eq(v ^ b1_new)]

        a_w = [self.b2a(m, f"w{i}", wb0[i], wb1[i], g) for i, g in enumerate(lanes("gw"))]
        a_x = [self.b2a(m, f"x{i}", xb0[i], xb1[i], g) for i, g in enumerate(lanes("gx"))]

        def trees() -> list[Value]:
            # x is consumed by selecting one bit (an AND-OR with the pointer, not a shifter),
            # so the registers stay put and the conversion nets reading xb1 do not move
            sums = []
            for wj in (wa, wb1):
                for xk in (xa, xb1):
                    sel = [(xk[i] & bit).any() for i in range(n)]
                    sums.append(adder_tree([wj[i] & sel[i].replicate(k) for i in range(n)], k))
            return sums

        m.d.comb += [self.y.payload[j].eq(acc[j]) for j in range(4)]

        with m.Switch(state):
            with m.Case(SecureMacState.IDLE):
                m.d.comb += [self.w.ready.eq(1), self.x.ready.eq(1)]
                with m.If(self.w.valid):
                    w_ext = [
                        Cat(wi, wi[-1].replicate(k - p.w_bits))
                        for wi in (self.w.payload[i] for i in range(n))
                    ]
                    load(wb0, wb1, w_ext, "w")
                with m.If(self.x.valid):
                    load(xb0, xb1, [self.x.payload[i] for i in range(n)], "x")
                    m.d.sync += [a.eq(0) for a in acc]
                    m.d.sync += state.eq(SecureMacState.CONVERT)
            with m.Case(SecureMacState.CONVERT):
                m.d.sync += [r.eq(a) for r, a in zip((*wa, *xa), (*a_w, *a_x), strict=True)]
                m.d.sync += [bit.eq(1 << (k - 1)), state.eq(SecureMacState.RUN)]
            with m.Case(SecureMacState.RUN):
                m.d.sync += [
                    a.eq((Cat(Const(0, 1), a) + s)[:k]) for a, s in zip(acc, trees(), strict=True)
                ]
                m.d.sync += bit.eq(bit >> 1)
                with m.If(bit[0]):
                    m.d.sync += state.eq(SecureMacState.DONE)
            with m.Case(SecureMacState.DONE):
                m.d.comb += self.y.valid.eq(1)
                with m.If(self.y.ready):
                    m.d.sync += state.eq(SecureMacState.IDLE)
        return m
