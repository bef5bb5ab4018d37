"""One training run whose last layer takes its pulse trains from the Verilated SPG:
its weights (every layer) equal the golden path's bit for bit."""

from __future__ import annotations

import pytest
from aimcflow.cosim.benches.spg_train import run_rtl_steps
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.training.mlp import TrainSettings

pytestmark = pytest.mark.cosim


@pytest.mark.parametrize(
    "device,algo,steps",
    [
        ("ftj-constrained", "sgd", 120),
        # make soak: one full epoch of the last layer (None = every training image)
        pytest.param("ftj-constrained", "sgd", None, marks=pytest.mark.slow, id="soak-epoch"),
    ],
)
def test_rtl_pulse_trains_give_bit_identical_weights(device, algo, steps):
    data = load_digits_dataset()
    if steps is None:
        steps = len(data.y_train)
    r = run_rtl_steps(data, TrainSettings(lr=0.1, desired_bl=255), device, algo, steps)
    assert r["rtl_updates"] == steps  # every step produced a pulsed update on the RTL
    assert r["pulse_mismatches"] == 0
    assert r["weight_mismatches"] == 0 and r["weights_compared"] == 65 * 32 + 33 * 10
