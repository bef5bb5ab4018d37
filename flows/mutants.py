"""The mutation catalogue of ``aimcflow.flows.mutate``: realistic bugs in the periphery RTL,
its golden models (alone and together with the RTL) and the analog converter model.

Each mutant is a list of exact edits ``(file, original snippet, replacement)``; the
original must occur exactly once in its file, so an entry whose source has moved fails
loudly (``tests/test_mutate.py`` checks the whole catalogue for that).  Adding a mutant is
one line; a new block adds one ``TIERS`` entry naming its fast and cosim tests.

``kind``: ``rtl`` (RTL only), ``golden`` (golden model only), ``both`` (the same bug in RTL
and golden model at once: only a test with an independent expectation can see it) or
``analog`` (behavioral converter model).  ``network``: a network run (``aimcflow run``,
levels 3 and 4) executes the mutated code, so it could in principle notice the bug.
``equivalent``: the argument why no test can kill the mutant (it changes no observable
behaviour); equivalents still run, and a killed "equivalent" is reported as an error.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    """Replace the one occurrence of ``original`` in ``file`` (repository-relative)."""

    file: str
    original: str
    replacement: str


@dataclass(frozen=True)
class Mutant:
    id: str
    block: str  # key of TIERS: which tests may kill it
    kind: str  # rtl | golden | both | analog
    what: str  # one-line description of the bug
    edits: tuple[Edit, ...]
    network: bool = False
    equivalent: str | None = None


@dataclass(frozen=True)
class Tier:
    """Test files of one block: ``fast`` (golden + Amaranth simulator, seconds) and ``cosim``
    (Verilator builds, minutes), run only when the fast tier misses."""

    fast: tuple[str, ...]
    cosim: tuple[str, ...]


TIERS: dict[str, Tier] = {
    "nmpu": Tier(
        ("tests/test_golden_nmpu.py", "tests/test_rtl_nmpu.py", "tests/test_fixedpoint.py"),
        ("tests/test_cosim_nmpu.py", "tests/test_cosim_top.py"),
    ),
    "mgmt": Tier(
        ("tests/test_golden_mgmt.py", "tests/test_rtl_mgmt.py"),
        ("tests/test_cosim_mgmt.py", "tests/test_cosim_top.py"),
    ),
    "spg": Tier(
        ("tests/test_spg_golden.py", "tests/test_spg_prng.py", "tests/test_spg_rtl.py"),
        ("tests/test_spg_cosim.py",),
    ),
    "mac": Tier(
        ("tests/test_secure_mac.py",),
        # the nets-model TVLA of a 4-lane MAC first (seconds): it alone sees mask flaws
        # between registers; then the 8-lane one
        (
            "tests/test_tvla.py::test_reduced_secure_mac_nets_no_first_order_leak",
            "tests/test_tvla.py::test_nets_model_catches_a_naive_conversion",
            "tests/test_secure_mac.py",
        ),
    ),
    "fixedpoint": Tier(
        (
            "tests/test_fixedpoint.py",
            "tests/test_golden_nmpu.py",
            "tests/test_golden_mgmt.py",
            "tests/test_spg_golden.py",
        ),
        ("tests/test_cosim_nmpu.py", "tests/test_cosim_mgmt.py"),
    ),
    "residual": Tier(
        ("tests/test_golden_residual_pool.py", "tests/test_rtl_residual_pool.py"),
        ("tests/test_cosim_residual_pool.py",),
    ),
    "pool": Tier(
        ("tests/test_golden_residual_pool.py", "tests/test_rtl_residual_pool.py"),
        ("tests/test_cosim_residual_pool.py",),
    ),
    "sfu": Tier(
        ("tests/test_golden_sfu.py", "tests/test_rtl_sfu.py"),
        ("tests/test_cosim_sfu.py",),
    ),
    "converter": Tier(
        ("tests/test_analog_converters.py", "tests/test_analog_tile.py"),
        ("tests/test_level4.py",),
    ),
}


def one(id: str, block: str, kind: str, file: str, original: str, replacement: str, what: str,
        network: bool = False, equivalent: str | None = None) -> Mutant:  # fmt: skip
    """A mutant of one edit."""
    return Mutant(id, block, kind, what, (Edit(file, original, replacement),), network, equivalent)


def many(id: str, block: str, kind: str, what: str, *edits: tuple[str, str, str],
         network: bool = False) -> Mutant:  # fmt: skip
    """A mutant of several edits of one ``kind`` applied together."""
    return Mutant(id, block, kind, what, tuple(Edit(*e) for e in edits), network)


def both(id: str, block: str, what: str, *edits: tuple[str, str, str], network: bool = False,
         equivalent: str | None = None) -> Mutant:  # fmt: skip
    """A mutant of several edits applied together (RTL and golden model alike)."""
    return Mutant(id, block, "both", what, tuple(Edit(*e) for e in edits), network, equivalent)


N, NG, M, MG = "rtl/nmpu.py", "models/periphery/nmpu.py", "rtl/mgmt.py", "models/periphery/mgmt.py"
S, SG, FP = "rtl/spg.py", "models/periphery/spg.py", "models/periphery/fixedpoint.py"
C, SM, SMG = "models/analog/converters.py", "rtl/secure_mac.py", "models/periphery/secure_mac.py"
R, RG, P, PG = (
    "rtl/residual.py",
    "models/periphery/residual.py",
    "rtl/pool.py",
    "models/periphery/pool.py",
)
SF, SFR, SFX, SFG = "rtl/sfu.py", "rtl/sfu_rows.py", "rtl/sfu_units.py", "models/periphery/sfu.py"
NMPU_READY = "m.d.comb += [self.i.ready.eq(advance), accept.eq(self.i.valid & advance)]"
NMPU_BUBBLE = (
    "stalled = Signal()\n        m.d.sync += stalled.eq(self.o.valid & ~self.o.ready)\n"
    "        m.d.comb += [self.i.ready.eq(advance & ~stalled), "
    "accept.eq(self.i.valid & advance & ~stalled)]"
)
ZERO_IS_ZERO = "at z = 0 both branches give 0 (rshr(0, k) = 0 for every k), so y is unchanged"

# fmt: off
CATALOGUE: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- NMPU, RTL only
    one("nmpu-rtl-round-truncate", "nmpu", "rtl", N, "rounded = (prod + (1 << (p.out_shift - 1))) >> p.out_shift", "rounded = prod >> p.out_shift", "output shift truncates instead of rounding half up", True),
    one("nmpu-rtl-relu-le", "nmpu", "rtl", N, "Mux(z < 0, 0, z)", "Mux(z <= 0, 0, z)", "ReLU tests z <= 0", True, equivalent="at z = 0 ReLU gives 0 either way, so y is unchanged"),
    one("nmpu-rtl-leaky-gt", "nmpu", "rtl", N, "Mux(z >= 0, z, (z + half_k) >> leaky_k)", "Mux(z > 0, z, (z + half_k) >> leaky_k)", "leaky passes only z > 0", equivalent=ZERO_IS_ZERO),
    one("nmpu-rtl-leaky-floor", "nmpu", "rtl", N, "(z + half_k) >> leaky_k", "z >> leaky_k", "leaky slope floors instead of rounding"),
    one("nmpu-rtl-acc-sat-hi", "nmpu", "rtl", N, "saturate(m, acc_old + shifted, acc_lo, acc_hi, f\"sum{j}\")", "saturate(m, acc_old + shifted, acc_lo, acc_hi - 1, f\"sum{j}\")", "accumulator positive rail one low", True),
    one("nmpu-rtl-acc-wrap", "nmpu", "rtl", N, "acc_new[j].eq(saturate(m, acc_old + shifted, acc_lo, acc_hi, f\"sum{j}\"))", "acc_new[j].eq(acc_old + shifted)", "accumulator wraps instead of saturating", True),
    one("nmpu-rtl-first-tile", "nmpu", "rtl", N, "acc_old = Mux(first1, 0, acc_rp.data[j])", "acc_old = acc_rp.data[j]", "accumulator not cleared at row tile 0", True),
    one("nmpu-rtl-shift-off-by-one", "nmpu", "rtl", N, "shift1.eq(self.i.payload.e - p.e_min)", "shift1.eq(self.i.payload.e - p.e_min + 1)", "exponent shift one too far", True),
    one("nmpu-rtl-clamp-wrong-bound", "nmpu", "rtl", N, "Mux(z < clamp_lo, clamp_lo,", "Mux(z < clamp_lo, clamp_hi,", "clamp below lo returns hi"),
    one("nmpu-rtl-outsat-signed-hi", "nmpu", "rtl", N, "-(1 << (n - 1)), (1 << (n - 1)) - 1, f\"sat_s{tag}\"", "-(1 << (n - 1)), (1 << (n - 1)), f\"sat_s{tag}\"", "signed output saturation one high", True),
    one("nmpu-rtl-outsat-unsigned-hi", "nmpu", "rtl", N, "saturate(m, act, 0, (1 << n) - 1, f\"sat_u{tag}\")", "saturate(m, act, 0, (1 << n), f\"sat_u{tag}\")", "unsigned output saturation one high", True),
    one("nmpu-rtl-bubble-after-stall", "nmpu", "rtl", N, NMPU_READY, NMPU_BUBBLE, "i.ready drops for a cycle after each output stall (throughput only)", True),
    one("nmpu-rtl-last-early", "nmpu", "rtl", N, "self.o.payload.last.eq(glast3)", "self.o.payload.last.eq(glast2)", "last flag from the wrong pipeline stage", True),
    one("nmpu-rtl-ncols-floor", "nmpu", "rtl", N, "return (n + (lanes - 1)) // lanes", "return n // lanes", "N_COLS register: groups rounded down (lanes not a power of 2)"),
    one("nmpu-rtl-tile-base", "nmpu", "rtl", N, "tile_base.eq(tile_base + G)", "tile_base.eq(tile_base + n_groups)", "row-tile coefficient base steps by the used groups, not the memory stride", True),
    one("nmpu-rtl-acc-not-transparent", "nmpu", "rtl", N, "G,\n                True,\n                st,\n                (\"acc_wp\", \"acc_rp\")", "G,\n                False,\n                st,\n                (\"acc_wp\", \"acc_rp\")", "accumulator read port not transparent (read-during-write)", True),
    # ---------------------------------------------------------------- NMPU golden, fixed point
    one("nmpu-gold-acc-wrap", "nmpu", "golden", NG, "acc = sat(acc + s[:, t, :], params.acc_bits)", "acc = acc + s[:, t, :]", "golden accumulator never saturates", True),
    one("nmpu-gold-leaky-floor", "nmpu", "golden", NG, "np.where(z >= 0, z, rshr(z, params.leaky_k))", "np.where(z >= 0, z, z >> params.leaky_k)", "golden leaky floors"),
    one("nmpu-gold-shift-cap-low", "nmpu", "golden", NG, "k = np.minimum(e - params.e_min, params.acc_bits + 1)", "k = np.minimum(e - params.e_min, params.acc_bits - 1)", "golden caps the exponent shift too early", True),
    one("nmpu-gold-shift-cap-acc", "nmpu", "golden", NG, "k = np.minimum(e - params.e_min, params.acc_bits + 1)", "k = np.minimum(e - params.e_min, params.acc_bits)", "golden caps the exponent shift at acc_bits", True, equivalent="a nonzero p shifted by acc_bits has |s| >= 2**acc_bits, and acc is in [-2**(acc_bits-1), 2**(acc_bits-1)), so acc + s passes the rail on s's side for the capped and the full shift alike: same saturated sum"),
    one("nmpu-gold-outsat-swapped", "nmpu", "golden", NG, "return sat(v, params.out_bits) if params.out_signed else satu(v, params.out_bits)", "return satu(v, params.out_bits) if params.out_signed else sat(v, params.out_bits)", "golden output saturation signedness swapped", True),
    one("fixp-rshr-half", "fixedpoint", "golden", FP, "np.left_shift(np.int64(1), np.maximum(s - 1, 0))", "np.left_shift(np.int64(1), np.maximum(s - 2, 0))", "rshr adds a quarter instead of a half", True),
    one("fixp-sat-symmetric", "fixedpoint", "golden", FP, "return np.clip(_as_int(v), -(1 << (n - 1)), (1 << (n - 1)) - 1)", "return np.clip(_as_int(v), -(1 << (n - 1)) + 1, (1 << (n - 1)) - 1)", "signed saturation symmetric (most negative code lost)", True),
    # ---------------------------------------------------------------- NMPU, RTL and golden together
    both("nmpu-both-round-truncate", "nmpu", "output shift truncates, in RTL and golden", (N, "rounded = (prod + (1 << (p.out_shift - 1))) >> p.out_shift", "rounded = prod >> p.out_shift"), (NG, "z = rshr(acc * mult, params.out_shift) + bias", "z = ((acc * mult) >> params.out_shift) + bias"), network=True),
    both("nmpu-both-leaky-floor", "nmpu", "leaky slope floors, in RTL and golden", (N, "(z + half_k) >> leaky_k", "z >> leaky_k"), (NG, "np.where(z >= 0, z, rshr(z, params.leaky_k))", "np.where(z >= 0, z, z >> params.leaky_k)")),
    # ---------------------------------------------------------------- management, RTL only
    one("mgmt-rtl-extra-retry", "mgmt", "rtl", M, "(it >= bound_max_iter)", "(it > bound_max_iter)", "one bound-management retry too many", True),
    one("mgmt-rtl-retry-past-emax", "mgmt", "rtl", M, "final.eq(~self.adc.payload.sat_any | (it >= bound_max_iter) | (e == p.e_max))", "final.eq(~self.adc.payload.sat_any | (it >= bound_max_iter))", "retries even at e_max", True),
    one("mgmt-rtl-dac-truncate", "mgmt", "rtl", M, "(xv + half) >> right", "xv >> right", "DAC codes truncate instead of rounding", True),
    one("mgmt-rtl-dac-sat-lo", "mgmt", "rtl", M, "saturate(m, scaled, d_lo, d_hi, f\"scaled{j}\")", "saturate(m, scaled, d_lo + 1, d_hi, f\"scaled{j}\")", "DAC saturation loses the most negative code", True),
    one("mgmt-rtl-abs-ones-complement", "mgmt", "rtl", M, "a.eq(Mux(v < 0, -v, v) if p.x_signed else v)", "a.eq(Mux(v < 0, ~v, v) if p.x_signed else v)", "|x| by one's complement", True),
    one("mgmt-rtl-max-not-reset", "mgmt", "rtl", M, "Mux((wr_addr == 0) | (beat_max > in_max), beat_max, in_max)", "Mux(beat_max > in_max, beat_max, in_max)", "max|x| carried over from the bank's previous segment", True),
    one("mgmt-rtl-zero-vector-e", "mgmt", "rtl", M, "with m.If((noise == 0) | (max_abs == 0)):", "with m.If(noise == 0):", "all-zero vector gets e_min instead of 0", True),
    one("mgmt-rtl-sat-live", "mgmt", "rtl", M, "self.o.payload.sat_any.eq(sat_latched),", "self.o.payload.sat_any.eq(self.adc.payload.sat_any),", "forwarded sat_any read live instead of latched", True, equivalent="the adc protocol carries the same sat_any on every beat of an answer, so the live flag of beat k equals the one latched on beat 0"),
    one("mgmt-rtl-single-buffer", "mgmt", "rtl", M, "self.x.ready.eq(~Mux(in_bank, full[1], full[0]))", "self.x.ready.eq(~(full[0] | full[1]))", "second x buffer unused (throughput only)", True),
    one("mgmt-rtl-threshold-off-by-one", "mgmt", "rtl", M, "((dac_max + 1) << e) - (1 << (e - 1)) - 1", "((dac_max + 1) << e) - (1 << (e - 1))", "exponent threshold one too high (e > 0)", True),
    # ---------------------------------------------------------------- management golden
    one("mgmt-gold-extra-retry", "mgmt", "golden", MG, "active = sat_any & (it < p.bound_max_iter) & (e < p.e_max)", "active = sat_any & (it <= p.bound_max_iter) & (e < p.e_max)", "golden retries once more", True),
    one("mgmt-gold-exponent-strict", "mgmt", "golden", MG, "left_ok = M[:, None] <= (p.dac_max >> np.maximum(-es, 0))[None, :]", "left_ok = M[:, None] < (p.dac_max >> np.maximum(-es, 0))[None, :]", "golden exponent: strict fit for e <= 0", True),
    one("mgmt-gold-zero-vector-e", "mgmt", "golden", MG, "return np.where(M == 0, 0, e).astype(np.int64)", "return e.astype(np.int64)", "golden: all-zero vector gets e_min", True),
    both("mgmt-both-extra-retry", "mgmt", "one retry too many, in RTL and golden", (M, "(it >= bound_max_iter)", "(it > bound_max_iter)"), (MG, "(it < p.bound_max_iter)", "(it <= p.bound_max_iter)"), network=True),
    # ---------------------------------------------------------------- analog converter model
    one("adc-satany-positive-only", "converter", "analog", C, "return np.any((codes == lo) | (codes == hi), axis=-1)", "return np.any(codes == hi, axis=-1)", "ADC sat_any checks the positive rail only", True),
    one("adc-satany-skip-last-col", "converter", "analog", C, "return np.any((codes == lo) | (codes == hi), axis=-1)", "return np.any((codes[..., :-1] == lo) | (codes[..., :-1] == hi), axis=-1)", "ADC sat_any ignores the last column", True),
    one("adc-satany-skip-first-col", "converter", "analog", C, "return np.any((codes == lo) | (codes == hi), axis=-1)", "return np.any((codes[..., 1:] == lo) | (codes[..., 1:] == hi), axis=-1)", "ADC sat_any ignores the first column", True),
    one("adc-codes-symmetric", "converter", "analog", C, "c = np.clip(round_half_up(y / lsb_value), lo, hi)", "c = np.clip(round_half_up(y / lsb_value), lo + 1, hi)", "ADC codes clip symmetric (most negative code lost)", True),
    one("adc-round-half-even", "converter", "analog", C, "return np.floor(v + 0.5)", "return np.round(v)", "ADC rounds half to even", True),
    # ---------------------------------------------------------------- SPG, RTL only
    one("spg-rtl-xorshift-triple", "spg", "rtl", S, "XORSHIFT_SHIFTS = (13, 17, 5)", "XORSHIFT_SHIFTS = (5, 17, 13)", "RTL xorshift triple (5, 17, 13)"),
    one("spg-rtl-compare-le", "spg", "rtl", S, "(state[k][:P] < q[k][:P])", "(state[k][:P] <= q[k][:P])", "pulse on r <= q"),
    one("spg-rtl-bresenham-gt", "spg", "rtl", S, "bres = step >= bl", "bres = step > bl", "Bresenham pulses one step late"),
    one("spg-rtl-update-bubble", "spg", "rtl", S, "self.i.ready.eq((~busy & ~self.seed.valid) | (busy & last & self.o.ready))", "self.i.ready.eq(~busy & ~self.seed.valid)", "one idle slot between updates (throughput only)"),
    one("spg-rtl-seed-ready-inverted", "spg", "rtl", S, "self.seed.ready.eq(~busy)", "self.seed.ready.eq(busy)", "seed never accepted while idle (handshake hangs)"),
    one("spg-rtl-translator-truncate", "spg", "rtl", S, "m.d.comb += raw.eq(prod[e:] + prod[e - 1])", "m.d.comb += raw.eq(prod[e:])", "translator truncates instead of rounding"),
    one("spg-rtl-abs-ones-complement", "spg", "rtl", S, "m.d.comb += mag.eq(Mux(sign, -v, v))", "m.d.comb += mag.eq(Mux(sign, ~v, v))", "|v| by one's complement"),
    one("spg-rtl-zero-seed", "spg", "rtl", S, "Mux(self.seed.payload.any(), self.seed.payload, Const(ZERO_SEED_BASE, STATE_BITS))", "self.seed.payload", "seed 0 loads the all-zero state"),
    one("spg-rtl-step-on-stall", "spg", "rtl", S, "            with m.If(take):\n                m.d.sync += [\n                    state[k].eq(", "            with m.If(self.o.valid):\n                m.d.sync += [\n                    state[k].eq(", "lanes advance on stalled slots too"),
    # ---------------------------------------------------------------- SPG golden, both
    one("spg-gold-det-floor", "spg", "golden", SG, "return rshr(np.asarray(q, dtype=np.int64) * int(bl), p.prob_bits)", "return np.right_shift(np.asarray(q, dtype=np.int64) * int(bl), p.prob_bits)", "golden deterministic count floors"),
    one("spg-gold-translator-sat", "spg", "golden", SG, "return np.minimum(q, np.int64(1) << p.prob_bits)", "return np.minimum(q, (np.int64(1) << p.prob_bits) - 1)", "golden translator saturates at 2**P - 1"),
    one("spg-gold-lane-stride", "spg", "golden", SG, "LANE_STRIDE = 1 << 21", "LANE_STRIDE = 1 << 20", "lane seed stride 2**20 (RTL follows: its jumps come from the golden model)"),
    both("spg-both-xorshift-triple", "spg", "xorshift triple (5, 17, 13) in RTL and golden", (S, "XORSHIFT_SHIFTS = (13, 17, 5)", "XORSHIFT_SHIFTS = (5, 17, 13)"), (SG, "XORSHIFT_SHIFTS = (13, 17, 5)", "XORSHIFT_SHIFTS = (5, 17, 13)")),
    both("spg-both-compare-le", "spg", "pulse on r <= q in RTL and golden", (S, "(state[k][:P] < q[k][:P])", "(state[k][:P] <= q[k][:P])"), (SG, "pulses = (r < q[:, None, :])", "pulses = (r <= q[:, None, :])")),
    # ---------------------------------------------------------------- residual add
    one("res-rtl-truncate", "residual", "rtl", R, "total.eq(pa[j] + pb[j] + half)", "total.eq(pa[j] + pb[j])", "residual sum truncates instead of rounding half up"),
    one("res-rtl-sum-wraps", "residual", "rtl", R, "s2[j].eq(saturate(m, total >> shift, c_lo, c_hi, f\"z{j}\"))", "s2[j].eq(total >> shift)", "residual sum wraps instead of saturating to out_bits + 1"),
    one("res-rtl-mult-a-twice", "residual", "rtl", R, "pb[j].eq(self.i.payload.b[j] * mult_b)", "pb[j].eq(self.i.payload.b[j] * mult_a)", "shortcut branch scaled by the main branch's multiplier"),
    one("res-rtl-last-early", "residual", "rtl", R, "self.o.payload.last.eq(last2)", "self.o.payload.last.eq(last1)", "last flag from the wrong pipeline stage"),
    many("res-rtl-bubble-after-stall", "residual", "rtl", "i.ready drops for a cycle after each output stall (throughput only)", (R, "m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]", "was_stalled = Signal()\n        m.d.sync += was_stalled.eq(self.o.valid & ~self.o.ready)\n        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance & ~was_stalled)]"), (R, "m.d.sync += [v1.eq(self.i.valid), last1.eq(self.i.payload.last)]", "m.d.sync += [v1.eq(self.i.valid & ~was_stalled), last1.eq(self.i.payload.last)]")),
    one("res-gold-truncate", "residual", "golden", RG, "z = rshr(a * coeffs.mult_a + b * coeffs.mult_b, coeffs.shift)", "z = np.right_shift(a * coeffs.mult_a + b * coeffs.mult_b, coeffs.shift)", "golden residual sum truncates"),
    one("res-gold-sat-narrow", "residual", "golden", RG, "s = sat(z, params.out_bits + 1)", "s = sat(z, params.out_bits)", "golden saturates the sum to out_bits, not out_bits + 1"),
    both("res-both-truncate", "residual", "residual sum truncates, in RTL and golden", (R, "total.eq(pa[j] + pb[j] + half)", "total.eq(pa[j] + pb[j])"), (RG, "z = rshr(a * coeffs.mult_a + b * coeffs.mult_b, coeffs.shift)", "z = np.right_shift(a * coeffs.mult_a + b * coeffs.mult_b, coeffs.shift)")),
    # ---------------------------------------------------------------- pooling
    one("pool-rtl-min-not-max", "pool", "rtl", P, "bigger = Mux(x > acc[j], x, acc[j])", "bigger = Mux(x < acc[j], x, acc[j])", "max pooling keeps the smaller value"),
    one("pool-rtl-max-ge", "pool", "rtl", P, "bigger = Mux(x > acc[j], x, acc[j])", "bigger = Mux(x >= acc[j], x, acc[j])", "max comparator >=", equivalent="on a tie x == acc both branches are the same value"),
    one("pool-rtl-window-not-restarted", "pool", "rtl", P, "m.d.sync += first.eq(self.i.payload.last)", "m.d.sync += first.eq(0)", "running max/sum carried over into the next window"),
    one("pool-rtl-truncate", "pool", "rtl", P, "rounded.eq((prod2[j] + half) >> shift)", "rounded.eq(prod2[j] >> shift)", "average truncates instead of rounding half up"),
    one("pool-rtl-satu-hi", "pool", "rtl", P, "saturate(m, rounded, 0, (1 << n) - 1, f\"sat_u{j}\")", "saturate(m, rounded, 0, (1 << n) - 2, f\"sat_u{j}\")", "unsigned average saturates one below the rail"),
    one("pool-rtl-max-drops-sign", "pool", "rtl", P, "max2[j].eq(r1[j][: n + 1])", "max2[j].eq(r1[j][:n])", "max result loses its sign bit"),
    many("pool-rtl-bubble-after-stall", "pool", "rtl", "i.ready drops for a cycle after each output stall (throughput only)", (P, "        accept = Signal()\n", "        accept = Signal()\n        was_stalled = Signal()\n        m.d.sync += was_stalled.eq(self.o.valid & ~self.o.ready)\n"), (P, "            self.i.ready.eq(advance),\n            accept.eq(self.i.valid & advance),", "            self.i.ready.eq(advance & ~was_stalled),\n            accept.eq(self.i.valid & advance & ~was_stalled),")),
    one("pool-gold-pad-wins", "pool", "golden", PG, "fill = np.iinfo(np.int64).min  # padded positions never win", "fill = 0", "golden max pooling lets a padded 0 win"),
    one("pool-gold-satu-swapped", "pool", "golden", PG, "return sat(y, params.bits) if params.signed else satu(y, params.bits)", "return satu(y, params.bits) if params.signed else sat(y, params.bits)", "golden average saturation signedness swapped"),
    one("pool-gold-recip-floor", "pool", "golden", PG, "mult = ((1 << (shift + 1)) + divisor) // (2 * divisor)", "mult = (1 << shift) // divisor", "average reciprocal floored (the RTL gets it from here: RTL and golden alike)"),
    # ---------------------------------------------------------------- SFU
    one("sfu-rtl-mm-acc-not-cleared", "sfu", "rtl", SFX, "m.d.comb += s.eq(Mux(k == 0, 0, acc[j]) + a * self.i.payload.b[j])", "m.d.comb += s.eq(acc[j] + a * self.i.payload.b[j])", "matmul accumulator not cleared at k = 0"),
    one("sfu-rtl-mm-wide-swapped", "sfu", "rtl", SFX, "saturate(m, z, wlo, whi, f\"mm_w{j}\"),\n                        saturate(m, z, nlo, nhi, f\"mm_n{j}\"),", "saturate(m, z, nlo, nhi, f\"mm_n{j}\"),\n                        saturate(m, z, wlo, whi, f\"mm_w{j}\"),", "matmul WIDE register inverted"),
    one("sfu-rtl-gelu-ones-complement", "sfu", "rtl", SFX, "m.d.comb += mag.eq(Mux(x < 0, -x, x))", "m.d.comb += mag.eq(Mux(x < 0, ~x, x))", "GELU |x| by one's complement"),
    many("sfu-rtl-stream-bubble", "sfu", "rtl", "matmul/GELU i.ready drops for a cycle after each output stall (throughput only)", (SFX, "    advance, accept = Signal(), Signal()\n", "    advance, accept = Signal(), Signal()\n    was_stalled = Signal()\n    m.d.sync += was_stalled.eq(unit.o.valid & ~unit.o.ready)\n"), (SFX, "        unit.i.ready.eq(advance),\n        accept.eq(unit.i.valid & advance),", "        unit.i.ready.eq(advance & ~was_stalled),\n        accept.eq(unit.i.valid & advance & ~was_stalled),")),
    one("sfu-rtl-softmax-top", "sfu", "rtl", SFR, "m.d.sync += self.o.payload.y[j].eq(Mux(pr > top, top, pr))", "m.d.sync += self.o.payload.y[j].eq(Mux(pr >= top, top - 1, pr))", "softmax probability clipped one below the top code"),
    one("sfu-rtl-sqrt-trial", "sfu", "rtl", SFR, "trial = (root << 2) | 1", "trial = root << 2", "layernorm square root trial subtrahend without its low 1"),
    one("sfu-rtl-last-lanes", "sfu", "rtl", SF, "last_lanes.eq(rest + 1),", "last_lanes.eq(rest),", "row ops ignore the last valid lane of a row's final beat"),
    one("sfu-rtl-row-out-waits-ready", "sfu", "rtl", SFR, "                with m.If(out_free):\n                    m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(row.last)]\n                    for j in range(lanes):\n                        pr", "                with m.If(self.o.ready):\n                    m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(row.last)]\n                    for j in range(lanes):\n                        pr", "softmax loads its output register only while o.ready is high (an extra cycle per stall, data intact)"),
    one("sfu-gold-gelu-clip", "sfu", "golden", SFG, "c = np.minimum(np.abs(x), b)", "c = np.minimum(np.abs(x), b - 1)", "golden GELU clips |x| one code early"),
    one("sfu-gold-softmax-unclipped", "sfu", "golden", SFG, "return np.minimum(rshr(e * factor[:, None], p.sm_recip_bits - p.out_bits + 1), top)", "return rshr(e * factor[:, None], p.sm_recip_bits - p.out_bits + 1)", "golden softmax not clipped at the top code (p = 1 overflows)"),
    both("sfu-both-mm-truncate", "sfu", "matmul output shift truncates, in RTL and golden", (SFX, "z = rshr_var(m, prod[j], self.shift, f\"mm_z{j}\")", "z = prod[j] >> self.shift"), (SFG, "return sat(rshr(acc * int(mult), int(shift)), p.wide_bits if wide else p.out_bits)", "return sat(np.right_shift(acc * int(mult), int(shift)), p.wide_bits if wide else p.out_bits)")),
    # ---------------------------------------------------------------- MACs
    one("smac-rtl-gamma-reuse", "mac", "rtl", SM, "for g in (*banks[\"d\" + op], *banks[\"g\" + op])", "for g in banks[\"d\" + op]", "Goubin gamma bank not stepped on a load"),
    one("smac-rtl-no-remask", "mac", "rtl", SM, "b1_new = b1[i] ^ d", "b1_new = b1[i]", "b1 share not re-masked on a load"),
    one("smac-rtl-w-zero-extend", "mac", "rtl", SM, "Cat(wi, wi[-1].replicate(k - p.w_bits))", "Cat(wi, Const(0, k - p.w_bits))", "weights zero-extended"),
    one("smac-rtl-skip-msb", "mac", "rtl", SM, "bit.eq(1 << (k - 1))", "bit.eq(1 << (k - 2))", "bit pointer starts one below the MSB"),
    one("pmac-rtl-w-zero-extend", "mac", "rtl", "rtl/plain_mac.py", "Cat(w[i], w[i][-1].replicate(k - p.w_bits))", "Cat(w[i], Const(0, k - p.w_bits))", "plain MAC weights zero-extended"),
    both("smac-both-gamma-reuse", "mac", "gamma bank not stepped on a load, in RTL and golden", (SM, "for g in (*banks[\"d\" + op], *banks[\"g\" + op])", "for g in banks[\"d\" + op]"), (SMG, "        self.gen_gamma = xorshift64_step(self.gen_gamma)\n", "")),
)
# fmt: on


def by_id() -> dict[str, Mutant]:
    return {m.id: m for m in CATALOGUE}
