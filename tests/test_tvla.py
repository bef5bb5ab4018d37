"""TVLA flow: the compiled Verilator harness, its Welch t statistics, the two target outcomes
(plain_mac leaks within 10 000 traces, secure_mac shows no first-order leakage), and the
``aimcflow tvla`` command's outputs and input errors.

Outcome tests use 20 000 traces (``make test``); ``make soak`` runs the full 1 000 000.
A secure design's max|t| over 25 samples exceeds 4.5 by chance with probability about
25 * 6.8e-6 = 1.7e-4 (two-sided normal tail), and the seeds are fixed, so the "< 4.5"
assertion is a real test, not a flaky one; the plain MAC crosses after ~10^2 traces, two
orders of magnitude inside the 10 000 budget.

The ``nets`` power model is checked on 4- and 8-lane MACs (a 64-lane nets harness takes
minutes to compile): the real Goubin conversion stays below 4.5 (the 4-lane harness builds
and runs in well under a minute, the quick check of the masking between registers), a naive
conversion ``A = (b0 ^ b1) - b1`` whose plaintext ``b0 ^ b1`` is a named net crosses it.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from aimcflow.cosim.tvla.build import build_harness, run_harness
from aimcflow.cosim.tvla.probe import PowerProbe
from aimcflow.rtl.secure_mac import SecureMac, SecureMacParams
from amaranth.hdl import Fragment, Signal
from scipy import stats

pytestmark = pytest.mark.cosim


@pytest.fixture(scope="module")
def plain():
    return build_harness("plain_mac")


@pytest.fixture(scope="module")
def secure():
    return build_harness("secure_mac")


@pytest.mark.parametrize("secret", ["weight", "activation"])
def test_plain_mac_leaks_within_10k_traces(plain, secret):
    r = run_harness(plain, 20_000, secret, seed=3)
    assert r.first_cross is not None and r.first_cross <= 10_000
    assert r.max_abs_t > 4.5


@pytest.mark.parametrize("secret", ["weight", "activation"])
def test_secure_mac_no_first_order_leak_20k(secure, secret):
    assert secure.samples == 22 + 3  # load, convert, 22 compute edges, hand-over
    r = run_harness(secure, 20_000, secret, seed=4)
    assert r.first_cross is None
    assert r.max_abs_t < 4.5
    assert r.curve[-1][0] == 20_000


class NaiveB2AMac(SecureMac):
    """The secure MAC with a deliberately broken conversion: it forms the value
    ``v = b0 ^ b1`` on a named net and subtracts ``b1``.  Same registers, same results."""

    def b2a(self, m, name, x_masked, r, gamma):
        k = self.params.acc_bits
        v, a = Signal(k, name=f"{name}_naive_v"), Signal(k, name=f"{name}_a")
        m.d.comb += [v.eq(x_masked ^ r), a.eq((v - r)[:k])]
        return a


def _mac8(cls):
    return cls(SecureMacParams(n=8))


@pytest.fixture(scope="module")
def secure8_nets():
    return build_harness("secure_mac", power_model="nets", dut=_mac8(SecureMac))


@pytest.fixture(scope="module")
def naive8_nets():
    return build_harness("naive_b2a_mac", power_model="nets", dut=_mac8(NaiveB2AMac))


@pytest.fixture(scope="module")
def secure4_nets():
    return build_harness("secure_mac4", power_model="nets", dut=SecureMac(SecureMacParams(n=4)))


@pytest.mark.parametrize("secret", ["weight", "activation"])
def test_reduced_secure_mac_nets_no_first_order_leak(secure4_nets, secret):
    """The nets model on a 4-lane secure MAC (seconds to build and run): every
    conversion net of the real design stays below 4.5 over 20 000 traces.  The registers
    model cannot see these nets, so this is the quick check of the masking between
    registers (e.g. a Goubin gamma reused across loads leaks here)."""
    r = run_harness(secure4_nets, 20_000, secret, seed=8)
    assert r.first_cross is None and r.max_abs_t < 4.5, r.max_abs_t


def test_nets_model_probes_the_conversion_nets(secure8_nets):
    """8 lanes, k = 19: the nets model adds 2 operands x 8 lanes x 7 named conversion nets
    of 19 bits (plus the 1-bit handshake nets, the y payload copy of the accumulators and
    the key-seeding unit's bank (2 bits), generator index and SplitMix64 output (64 bits),
    which stay constant once the generators are loaded)."""
    registers_only = PowerProbe(_mac8(SecureMac), "registers")
    Fragment.get(registers_only, None)  # elaborated, as a build would (no unused warning)
    assert secure8_nets.samples == 19 + 3
    nets_bits = secure8_nets.state_bits - registers_only.state_bits
    seeding = 2 + (SecureMacParams(n=8).generators - 1).bit_length() + 64
    assert nets_bits == 2 * 8 * 7 * 19 + 3 + 4 * 19 + seeding


@pytest.mark.parametrize("secret", ["weight", "activation"])
def test_nets_model_catches_a_naive_conversion(naive8_nets, secure8_nets, secret):
    bad = run_harness(naive8_nets, 20_000, secret, seed=6)
    assert bad.first_cross is not None and bad.max_abs_t > 4.5
    good = run_harness(secure8_nets, 20_000, secret, seed=6)
    assert good.first_cross is None and good.max_abs_t < 4.5


@pytest.mark.slow
@pytest.mark.parametrize("secret", ["weight", "activation"])
def test_secure_mac_no_first_order_leak_1M(secure, secret):
    r = run_harness(secure, 1_000_000, secret, seed=5, every=10_000)
    assert r.first_cross is None
    assert r.max_abs_t < 4.5
    assert r.curve[-1][0] == 1_000_000


def _read_dump(path, samples):
    raw = np.fromfile(path, dtype=np.uint8)
    rec = raw.reshape(-1, 1 + 4 * samples)
    cls = rec[:, 0]
    tr = rec[:, 1:].copy().view("<i4").astype(np.float64)
    return cls, tr


# scipy warns on the samples of constant control registers (zero variance); those are the
# NaNs mapped to 0 below, exactly what the harness does
@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
@pytest.mark.parametrize("order", [1, 2])
def test_harness_t_statistic_matches_an_independent_computation(plain, tmp_path, order):
    """The harness's online (Pebay) moments vs a two-pass numpy/scipy computation on the
    traces it dumped.  Order 1: scipy's Welch test.  Order 2: Welch on the centred squares,
    with the harness's stated convention (population moments, divide by n)."""
    dump = tmp_path / "traces.bin"
    r = run_harness(plain, 3000, "weight", order=order, seed=9, dump=dump)
    cls, tr = _read_dump(dump, plain.samples)
    assert len(cls) == 3000 and np.bincount(cls).tolist() == [1500, 1500]
    a, b = tr[cls == 0], tr[cls == 1]
    if order == 1:
        t = stats.ttest_ind(a, b, equal_var=False).statistic
    else:
        ya, yb = (a - a.mean(0)) ** 2, (b - b.mean(0)) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (ya.mean(0) - yb.mean(0)) / np.sqrt(ya.var(0) / len(a) + yb.var(0) / len(b))
    t = np.nan_to_num(t, nan=0.0)  # samples without variance (control registers) are 0
    assert r.max_abs_t == pytest.approx(np.abs(t).max(), rel=1e-6)


def test_power_samples_are_register_toggles(plain, tmp_path):
    """Sanity of the power model on plain_mac (64 lanes): per dot product the harness
    reports x_bits + 2 = 10 edges; every sample is bounded by the 1052 register bits; the
    rotating 512 activation bits toggle during the 8 compute edges only."""
    dump = tmp_path / "t.bin"
    run_harness(plain, 200, "activation", seed=2, dump=dump)
    _, tr = _read_dump(dump, plain.samples)
    assert plain.samples == 10 and plain.state_bits == 1052
    assert tr.min() >= 0 and tr.max() <= 1052
    # edge 0 loads 1024 random w/x bits: about half toggle, mean ~512 + accumulator clear
    assert 400 < tr[:, 0].mean() < 650
    # the last edge (result taken, back to idle) only moves the 2-bit state register
    assert tr[:, -1].max() <= 2


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "aimcflow.flows.cli", "tvla", *args], capture_output=True, text=True
    )


def test_cli_writes_results_and_plot(plain, tmp_path):
    out = tmp_path / "tv"
    p = _cli("--design", "plain_mac", "--secret", "weight", "--traces", "2000", "--out", str(out))
    assert p.returncode == 0, p.stderr
    res = json.loads((out / "results.json").read_text())
    for key in ("design", "secret", "traces", "max_abs_t", "curve", "traces_per_s"):
        assert key in res
    assert res["design"] == "plain_mac" and res["secret"] == "weight" and res["traces"] == 2000
    assert res["curve"][-1] == [2000, res["max_abs_t"]] and res["max_abs_t"] > 4.5
    assert (out / "tvla.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--traces", "3"], "give an integer in 4..10000000"),
        (["--traces", "0"], "give an integer in 4..10000000"),
        (["--secret", "key"], "invalid choice"),
        (["--power-model", "wires"], "invalid choice"),
    ],
)
def test_cli_bad_input_exit_2_nothing_written(tmp_path, args, msg):
    out = tmp_path / "never"
    base = {"--design": "plain_mac", "--secret": "weight", "--traces": "100"}
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = v
    flat = [x for kv in base.items() for x in kv]
    p = _cli(*flat, "--out", str(out))
    assert p.returncode == 2
    assert msg in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()


def test_cli_keeps_existing_results_without_force(tmp_path):
    out = tmp_path / "tv"
    out.mkdir()
    (out / "results.json").write_text('{"mine": 1}')
    p = _cli("--design", "plain_mac", "--secret", "weight", "--traces", "100", "--out", str(out))
    assert p.returncode == 2 and "--force" in p.stderr
    assert (out / "results.json").read_text() == '{"mine": 1}'
