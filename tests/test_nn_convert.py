"""Conversion of torch models to analog layers: structure, im2col, errors (no tiles needed)."""

import numpy as np
import pytest
import torch
from aimcflow.models.config import load_config
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.analog_ops import vector_keys
from aimcflow.models.nn.convert import AnalogNetwork, convert, ops_from_model
from torch import nn


def _ideal(model, x):
    return AnalogNetwork(ops_from_model(model), None, x.shape[1]).forward_ideal(x)


@pytest.mark.parametrize(
    "conv",
    [
        dict(kernel_size=3, padding=1),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=(2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 1)),
        dict(kernel_size=2, padding="same"),
        dict(kernel_size=3, padding="valid", bias=False),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_im2col_equals_torch(conv):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Unflatten(1, (2, 8, 8)),
        nn.Conv2d(2, 5, **conv),
        nn.BatchNorm2d(5),
        nn.LeakyReLU(0.1),
        nn.Flatten(),
    )
    bn = model[2]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    model.eval()
    x = torch.rand(7, 128, dtype=torch.float64)
    ref = model.double()(x).detach().numpy()
    # float64 throughout: agreement to rounding error of a 50-term sum
    np.testing.assert_allclose(_ideal(model, x.numpy()), ref, rtol=1e-12, atol=1e-12)


def test_linear_layers_keep_order_and_indices():
    model = nn.Sequential(
        nn.Linear(6, 4), nn.ReLU(), nn.Sequential(nn.Dropout(), nn.Linear(4, 3))
    ).eval()
    ops = ops_from_model(model)
    layers = [o for o in ops if hasattr(o, "matrix")]
    assert [lay.index for lay in layers] == [0, 1]
    assert [lay.name for lay in layers] == ["0", "2.1"]
    assert layers[0].weight.shape == (6, 4)  # W is (inputs, outputs): y = x @ W
    x = np.random.default_rng(0).random((3, 6))
    np.testing.assert_allclose(
        _ideal(model, x), model.double()(torch.from_numpy(x)).detach().numpy(), rtol=1e-12
    )


def test_vector_keys_are_unique_per_patch():
    k = vector_keys(np.array([5, 2]), 3)
    np.testing.assert_array_equal(k, [15, 16, 17, 6, 7, 8])


@pytest.mark.parametrize(
    "model, words",
    [
        (nn.Sequential(nn.Linear(4, 4), nn.Sigmoid()), r"graph node 'sigmoid' \(op aten.sigmoid"),
        (
            nn.Sequential(nn.Unflatten(1, (2, 2, 2)), nn.Conv2d(2, 2, 1), nn.Softmax(1)),
            r"graph node 'softmax' \(op aten.softmax",
        ),
        (nn.Sequential(nn.Unflatten(1, (2, 2, 2)), nn.Conv2d(2, 2, 1, groups=2)), r"groups=2"),
        (nn.Sequential(nn.Flatten(), nn.ReLU()), "no Linear or Conv2d"),
        (
            nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False)),
            "batch norm in training mode",
        ),
    ],
)
def test_unsupported_models_are_named(model, words):
    with pytest.raises(UserInputError, match=words):
        convert(
            model.eval(),
            load_config("ideal"),
            input_shape=(8,) if isinstance(model[0], nn.Unflatten) else (4,),
        )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_weights_rejected(bad):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[2].weight[1, 3] = bad
    with pytest.raises(UserInputError, match="layer 2 has NaN or Inf"):
        convert(model, load_config("ideal"))
