"""plain_mac and secure_mac: golden models (properties of the masking) and RTL bit-exact
against them, under cocotb + Verilator and under Amaranth's simulator."""

import numpy as np
import pytest
from aimcflow.cosim import runner
from aimcflow.models.errors import UserInputError
from aimcflow.models.periphery import secure_mac as golden
from aimcflow.rtl.plain_mac import MacParams, PlainMac
from aimcflow.rtl.secure_mac import SecureMac, SecureMacParams
from amaranth.sim import Simulator
from amaranth_streams import get, put, recorder
from hypothesis import given, settings
from hypothesis import strategies as st


def test_acc_bits_is_exact_and_tight():
    # -128 * 255 * 64 = -2088960 needs 22 signed bits (2**21 = 2097152)
    assert golden.acc_bits(64) == 22 == MacParams(n=64).acc_bits
    for n in (1, 3, 8, 64, 100, 1024):
        k = golden.acc_bits(n)
        assert k == MacParams(n=n).acc_bits
        assert -(1 << (k - 1)) <= -n * 128 * 255 and n * 127 * 255 < (1 << (k - 1))
        assert -n * 128 * 255 < -(1 << (k - 2))  # one bit fewer would not do


def _secure_params(spec: golden.SecureMacSpec) -> SecureMacParams:
    """RTL parameters of the golden spec (the key itself goes to the ``seed`` port)."""
    return SecureMacParams(n=spec.n)


def test_rtl_and_golden_size_the_generator_banks_alike():
    spec = golden.SecureMacSpec(n=64, seed=1234)
    seeds = golden.rtl_mask_seeds(spec)
    assert _secure_params(spec).generators == spec.generators == 22
    assert len(seeds) == 4 and len({s for bank in seeds for s in bank}) == 4 * 22
    assert SecureMacParams(n=64).seeding_cycles == 2 * 4 * 22
    # keys below 2**44: the rotation is the shift of the original expansion
    assert golden.generator_seeds(1234, 2, 1) == [
        golden.splitmix64((1234 << 20) ^ (1 << 16) ^ j) for j in range(2)
    ]
    with pytest.raises(UserInputError, match="64-bit"):
        golden.generator_seeds(1 << 64, 1, 0)


def test_xorshift64_known_sequence():
    # Marsaglia (2003), xorshift64 with shifts (13, 7, 17) from state 1: first two outputs
    s = np.array([1], dtype=np.uint64)
    s = golden.xorshift64_step(s)
    assert int(s[0]) == 0x40822041
    s = golden.xorshift64_step(s)
    assert int(s[0]) == 0x100041060C011441


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.data())
def test_goubin_b2a_gives_arithmetic_shares(k, data):
    """A + r = x' ^ r (mod 2**k) for every k-bit x', r, gamma (Goubin's Theorem 1), the
    conversion is the formula of the RTL docstring (independent python-int evaluation) and
    every intermediate is a k-bit value."""
    top = (1 << k) - 1
    xm, r, g = (data.draw(st.integers(0, top)) for _ in range(3))
    nets = golden.goubin_b2a([xm], [r], [g], k)
    assert (int(nets["a"][0]) + r) & top == xm ^ r
    # the formula as written in the RTL docstring, evaluated with python ints
    a = (((xm ^ g) - g) ^ xm ^ ((xm ^ (r ^ g)) - (r ^ g))) & top
    assert int(nets["a"][0]) == a
    assert all(0 <= int(v[0]) <= top for v in nets.values())


def test_goubin_intermediates_independent_of_the_value():
    """Exhaustive over k = 4: for each value v, the distribution of every conversion net
    over all (r, gamma) is the same (Goubin's first-order property).  Checked as the
    histogram of each net's value, per v, equal to that of v = 0."""
    k = 4
    r, g = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    r, g = r.ravel(), g.ravel()
    hist = {}
    for v in range(16):
        nets = golden.goubin_b2a(v ^ r, r, g, k)
        assert np.all((nets["a"] + r) % 16 == v)
        hist[v] = {key: np.bincount(val, minlength=16).tolist() for key, val in nets.items()}
    assert all(hist[v] == hist[0] for v in range(16))
    # the same check sees a conversion without gamma: its net x' ^ r ^ g is then v itself
    t3_of = {
        v: np.bincount(golden.goubin_b2a(v ^ r, r, 0 * g, k)["t3"], minlength=16) for v in (0, 5)
    }
    assert t3_of[0].tolist() != t3_of[5].tolist()


def test_shares_recombine_to_the_dot_product():
    rng = np.random.default_rng(5)
    m = golden.SecureMacModel(golden.SecureMacSpec(n=64, seed=99))
    mod = 1 << 22
    for _ in range(50):
        w = rng.integers(-128, 128, 64)
        x = rng.integers(0, 256, 64)
        m.load_w(w)
        sh = m.mac(x)
        assert golden.recombine(sh, 22) == golden.dot(w, x)
        assert np.all(m.w.b0 ^ m.w.b1 == w % mod)  # Boolean shares
        assert np.all((m.w.a + m.w.b1) % mod == w % mod)  # arithmetic shares
        assert np.all((m.x.a + m.x.b1) % mod == x)


def test_shares_are_uniform_whatever_the_secret():
    """Each share register's value must not depend on the secret: for an all-zero and an
    all-(-128) weight vector loaded 4000 times, the mean of b0 and of A over 4000 loads x 64
    lanes is (2**22-1)/2 within 6 standard errors (sd of a uniform 22-bit value /
    sqrt(256000) ~ 2400), and the mean Hamming distance of b0 and A between consecutive
    loads of the SAME value is k/2 = 11 within 6 standard errors (sd sqrt(22)/2 / sqrt(N))."""
    k, loads = 22, 4000
    se = (1 << k) / np.sqrt(12) / np.sqrt(loads * 64)
    se_hd = np.sqrt(k) / 2 / np.sqrt(loads * 64)

    def hw(v):
        return np.unpackbits(v.astype("<u4").view(np.uint8)).sum()

    for secret in (0, -128):
        m = golden.SecureMacModel(golden.SecureMacSpec(n=64, seed=7))
        acc_b0 = acc_a = hd_b0 = hd_a = 0.0
        prev_b0 = prev_a = None
        for _ in range(loads):
            m.load_w(np.full(64, secret))
            m.mac(np.zeros(64, dtype=int))
            acc_b0 += m.w.b0.mean()
            acc_a += m.w.a.mean()
            if prev_b0 is not None:
                hd_b0 += hw(prev_b0 ^ m.w.b0) / 64
                hd_a += hw(prev_a ^ m.w.a) / 64
            prev_b0, prev_a = m.w.b0.copy(), m.w.a.copy()
        for mean in (acc_b0 / loads, acc_a / loads):
            assert abs(mean - ((1 << k) - 1) / 2) < 6 * se
        for hd in (hd_b0 / (loads - 1), hd_a / (loads - 1)):
            assert abs(hd - k / 2) < 6 * se_hd


def test_golden_rejects_out_of_range_inputs():
    with pytest.raises(UserInputError, match="signed 8-bit"):
        golden.dot(np.full(4, 128), np.zeros(4, dtype=int))
    with pytest.raises(UserInputError, match="unsigned 8-bit"):
        golden.dot(np.zeros(4, dtype=int), np.full(4, 256))
    with pytest.raises(UserInputError, match="lanes"):
        golden.SecureMacModel(golden.SecureMacSpec(n=4)).load_w(np.zeros(5, dtype=int))


def _amaranth_run(dut, w, x, key: int | None = None):
    """Each vector through the stream handshakes (``put`` holds ``valid`` until ``ready``):
    the weights first (held in the MAC), then the activations, which start the product.
    ``key``: the secure MAC's key, driven on its port while it loads its generators."""
    outs = []

    async def tb(ctx):
        if key is not None:  # the secure MAC loads its generators from the key port first
            ctx.set(dut.seed, key)
            for _ in range(dut.params.seeding_cycles):
                assert not ctx.get(dut.w.ready)
                await ctx.tick()
            assert ctx.get(dut.w.ready) and ctx.get(dut.x.ready)
        for v in range(len(x)):
            await put(ctx, dut.w, [int(a) for a in w[v]])
            await put(ctx, dut.x, [int(a) for a in x[v]])
            p = await get(ctx, dut.y)
            outs.append([int(p[j]) for j in range(4)] if isinstance(dut, SecureMac) else int(p))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return outs


def test_amaranth_sim_plain_and_secure_small():
    rng = np.random.default_rng(2)
    n, v = 8, 6
    w = rng.integers(-128, 128, (v, n))
    x = rng.integers(0, 256, (v, n))
    w[0], x[0] = -128, 255
    assert _amaranth_run(PlainMac(MacParams(n=n)), w, x) == golden.dot(w, x).tolist()
    # one key below 2**44 and one using all 64 bits (the rotation wraps)
    for key in (3, 0xDEADBEEF12345678):
        m = golden.SecureMacModel(golden.SecureMacSpec(n=n, seed=key))
        want = []
        for i in range(v):
            m.load_w(w[i])
            want.append(m.mac(x[i]).tolist())
        assert _amaranth_run(SecureMac(_secure_params(m.spec)), w, x, key) == want
    # the masks really come from the port: another key gives other shares
    assert _amaranth_run(SecureMac(_secure_params(m.spec)), w, x, 4) != want


def _stalled_run(dut, w, x, stall: float, seed: int, key: int | None = None):
    """Weights and activations offered together, ``y`` taken with random stalls; returns
    the results, the (x transfer, y transfer) cycles of each product and the per-cycle
    trace ``(w.valid, w.ready, x.valid, x.ready, y.valid, y.ready)``."""
    rng = np.random.default_rng(seed)
    outs, spans, trace = [], [], []
    signals = (dut.w.valid, dut.w.ready, dut.x.valid, dut.x.ready, dut.y.valid, dut.y.ready)

    async def tb(ctx):
        if key is not None:
            ctx.set(dut.seed, key)
            for _ in range(dut.params.seeding_cycles):
                await ctx.tick()
        n = 0
        for v in range(len(x)):
            ctx.set(dut.w.payload, [int(a) for a in w[v]])
            ctx.set(dut.x.payload, [int(a) for a in x[v]])
            ctx.set(dut.w.valid, 1)
            ctx.set(dut.x.valid, 1)
            t_x = None
            while True:
                ready = int(rng.random() >= stall)
                ctx.set(dut.y.ready, ready)
                _, _, xr, yv, y = await ctx.tick().sample(dut.x.ready, dut.y.valid, dut.y.payload)
                if xr and t_x is None:
                    t_x = n
                    ctx.set(dut.w.valid, 0)
                    ctx.set(dut.x.valid, 0)
                n += 1
                if yv and ready:
                    spans.append((t_x, n - 1))
                    outs.append(
                        [int(y[j]) for j in range(4)] if isinstance(dut, SecureMac) else int(y)
                    )
                    break
                assert n < 10_000, "no result"
        ctx.set(dut.y.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.add_testbench(recorder(signals, trace), background=True)
    sim.run()
    return outs, spans, np.array(trace)


@pytest.mark.parametrize("secure", [False, True])
def test_handshake_under_random_result_stalls(secure):
    """The docstrings' timing in every cycle with ``y`` stalled at random (50 %): operands
    are taken only while idle (never while a result waits), a result stays offered until
    taken, and each product takes its documented cycles plus exactly the stalled ones."""
    rng = np.random.default_rng(12)
    n, v = 8, 12
    w, x = rng.integers(-128, 128, (v, n)), rng.integers(0, 256, (v, n))
    if secure:
        spec = golden.SecureMacSpec(n=n, seed=5)
        dut, cycles = SecureMac(_secure_params(spec)), spec.cycles
        m = golden.SecureMacModel(spec)
        want = []
        for i in range(v):
            m.load_w(w[i])
            want.append(m.mac(x[i]).tolist())
    else:
        dut, cycles, want = (
            PlainMac(MacParams(n=n)),
            golden.plain_cycles(8),
            golden.dot(w, x).tolist(),
        )
    outs, spans, tr = _stalled_run(dut, w, x, 0.5, seed=13, key=5 if secure else None)
    assert outs == want
    w_v, w_r, x_v, x_r, y_v, y_r = tr.T
    bad = np.flatnonzero(y_v & (w_r | x_r))
    assert bad.size == 0, f"operands ready while a result waits, cycles {bad[:8].tolist()}"
    keep = y_v[:-1] & (1 - y_r[:-1])
    bad = np.flatnonzero(keep & (1 - y_v[1:]))
    assert bad.size == 0, f"result withdrawn before it was taken, cycles {bad[:8].tolist()}"
    offset = len(tr) - 1 - spans[-1][1]  # trace cycles before the testbench's first edge
    stalled_total = 0
    for t_x, t_y in spans:
        seg = slice(t_x + offset, t_y + offset + 1)
        stalled = int(np.sum(y_v[seg] & (1 - y_r[seg])))
        stalled_total += stalled
        assert t_y - t_x + 1 == cycles + stalled, (t_x, t_y, stalled)
    assert stalled_total >= 5  # the run really stalled


def _cosim(design: str, n: int, ops: int, mask_key: int = golden.SecureMacSpec.seed) -> dict:
    if design == "plain_mac":
        comp = PlainMac(MacParams(n=n))
    else:
        comp = SecureMac(_secure_params(golden.SecureMacSpec(n=n)))
    build = runner.build_component(comp, f"{design}")
    params = {"design": design, "n": n, "ops": ops, "seed": 11, "mask_key": mask_key}
    return build.run("aimcflow.cosim.benches.mac", params).result


@pytest.mark.cosim
@pytest.mark.parametrize("design", ["plain_mac", "secure_mac"])
def test_rtl_bit_exact_under_verilator(design):
    """16 lanes keep the Verilator build inside the make-test budget; the 64-lane default
    runs under make soak (the RTL is generated by the same loops for every n)."""
    res = _cosim(design, 16, 300, mask_key=0xA5A5F00DCAFE1234)
    assert res["ops"] == 300 and res["mismatches"] == 0
    # operands only while idle, results held until taken: every cycle under random stalls
    assert not any(res["handshake_violations"].values()), res["handshake_violations"]
    assert res["handshake_checked"] > res["ops"]
    # secure: 300 share vectors + 300 recombined values compared
    assert res["compared"] == (600 if design == "secure_mac" else 300)


@pytest.mark.cosim
@pytest.mark.slow
@pytest.mark.parametrize("design", ["plain_mac", "secure_mac"])
def test_rtl_bit_exact_under_verilator_64_lanes(design):
    res = _cosim(design, 64, 2000)
    assert res["ops"] == 2000 and res["mismatches"] == 0
    assert res["compared"] == (4000 if design == "secure_mac" else 2000)
