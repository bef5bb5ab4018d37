"""The analog-float level (level 2) of whole networks: ideal limit, batch invariance,
and the drift-table numbers of the baseline FTJ tile, pinned."""

import numpy as np
import pytest
from aimcflow.models.config import load_config
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.evaluate import chance_error, drift_sweep, normalized_accuracy
from aimcflow.models.nn.workloads import accuracy_float, pretrained


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


@pytest.mark.parametrize("arch", ["digits-mlp", "digits-cnn"])
def test_ideal_config_matches_float(digits, arch):
    model = pretrained(arch, digits)
    acc_f = accuracy_float(model, digits.x_test, digits.y_test)
    acc_a = convert(model, load_config("ideal")).accuracy(digits.x_test, digits.y_test)
    print(f"{arch}: float {acc_f:.4f}, analog-float under ideal.toml {acc_a:.4f}")
    assert abs(acc_a - acc_f) <= 0.005  # the bound; 0.005 is < 2 of 360 images


@pytest.mark.parametrize("arch, cfg", [("digits-mlp", "pcm"), ("digits-cnn", "baseline-ftj")])
def test_results_do_not_depend_on_batching(digits, arch, cfg):
    net = convert(pretrained(arch, digits), load_config(cfg))
    x, ids = digits.x_test[:40], np.arange(200, 240)
    whole = net.forward_float(x, ids, batch_size=512)
    assert np.array_equal(whole, net.forward_float(x, ids, batch_size=7))
    perm = np.random.default_rng(1).permutation(len(x))
    assert np.array_equal(whole[perm], net.forward_float(x[perm], ids[perm], batch_size=1))
    # the ids, not the positions, carry the noise: other ids give other noise
    assert not np.array_equal(whole, net.forward_float(x, ids + 1000))


def test_normalized_accuracy_formula():
    # eq. 3.8 end points: float error -> 1, chance error -> 0, halfway -> 0.5
    np.testing.assert_allclose(normalized_accuracy([0.02, 0.9, 0.46], 0.02, 0.9), [1, 0, 0.5])


# Pinned band for the digits MLP at 1 h under baseline-ftj (seed 0, repeats 0..4).
# Reference distribution measured once over 40 repeats (aimcflow run --drift 1h --repeats 40):
# per-repeat accuracy mean 0.9694, sample std 0.0036.  The mean of 5 repeats then has
# standard error 0.0036/sqrt(5) = 0.0016; the band is that mean +- 4 standard errors
# (+-0.0065), so only a real change of the tile model or the mapping moves it outside.
PIN_MEAN, PIN_STD, PIN_N = 0.9694, 0.0036, 5
PIN_HALF = 4 * PIN_STD / np.sqrt(PIN_N)


def test_baseline_ftj_mlp_at_1h_is_pinned(digits):
    model = pretrained("digits-mlp", digits)
    err_f = 1 - accuracy_float(model, digits.x_test, digits.y_test)
    err_c = chance_error(model, digits.x_test, digits.y_test)
    assert 0.85 <= err_c <= 0.95  # random weights on 10 classes: about 1 - 1/10
    net = convert(model, load_config("baseline-ftj"), program=False)
    (res,) = drift_sweep(net, digits.x_test, digits.y_test, [3600.0], PIN_N, err_f, err_c)
    a_lo = normalized_accuracy(1 - (PIN_MEAN - PIN_HALF), err_f, err_c)
    a_hi = normalized_accuracy(1 - (PIN_MEAN + PIN_HALF), err_f, err_c)
    print(
        f"baseline-ftj digits-mlp 1 h: accuracy {res.mean:.4f} +- {res.std:.4f} "
        f"(band {PIN_MEAN - PIN_HALF:.4f}..{PIN_MEAN + PIN_HALF:.4f}), "
        f"A* {res.a_star_mean:.4f} +- {res.a_star_std:.4f} (band {a_lo:.4f}..{a_hi:.4f}), "
        f"chance error {err_c:.4f}"
    )
    assert abs(res.mean - PIN_MEAN) <= PIN_HALF
    assert a_lo <= res.a_star_mean <= a_hi
    # repeats really re-program: not every repeat gives the same accuracy
    assert len(set(res.accuracies.tolist())) > 1
