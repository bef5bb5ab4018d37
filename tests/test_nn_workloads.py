"""Reference workloads: accuracy, deterministic training, the weights cache, user models."""

from pathlib import Path

import pytest
import torch
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn import workloads
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.workloads import (
    Recipe,
    accuracy_float,
    get_model,
    load_user_model,
    pretrained,
    train,
)
from torch import nn


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


def test_mlp_reaches_95_percent_float(digits):
    model = pretrained("digits-mlp", digits)
    acc = accuracy_float(model, digits.x_test, digits.y_test)
    print(f"digits-mlp float test accuracy {acc:.4f}")
    assert acc >= 0.95


def test_cnn_learns(digits):
    # The issue sets no bar for the CNN; 90 % is far above chance (10 %) and far below
    # what it reaches, so this only catches a broken architecture or im2col-free training bug.
    acc = accuracy_float(pretrained("digits-cnn", digits), digits.x_test, digits.y_test)
    print(f"digits-cnn float test accuracy {acc:.4f}")
    assert acc >= 0.90


def test_training_is_deterministic(digits):
    r = Recipe("digits-mlp", epochs=2, batch_size=64, lr=2e-3, weight_decay=1e-4)
    a, b = train(r, digits).state_dict(), train(r, digits).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cache_is_keyed_by_recipe(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("AIMCFLOW_CACHE", str(tmp_path))
    monkeypatch.setitem(
        workloads.RECIPES,
        "digits-mlp",
        Recipe("digits-mlp", epochs=1, batch_size=64, lr=2e-3, weight_decay=0.0),
    )
    first = pretrained("digits-mlp", digits)
    files = list((tmp_path / "models").glob("digits-mlp-*.pt"))
    assert len(files) == 1
    again = pretrained("digits-mlp", digits)  # loaded, not retrained: identical weights
    for k, v in first.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])
    monkeypatch.setitem(
        workloads.RECIPES,
        "digits-mlp",
        Recipe("digits-mlp", epochs=2, batch_size=64, lr=2e-3, weight_decay=0.0),
    )
    pretrained("digits-mlp", digits)
    assert len(list((tmp_path / "models").glob("digits-mlp-*.pt"))) == 2


class NotSequential(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x)


def test_user_models(digits, tmp_path):
    mlp = pretrained("digits-mlp", digits)
    sd = tmp_path / "sd.pt"
    torch.save(mlp.state_dict(), sd)
    loaded = load_user_model(sd, digits)
    x = torch.from_numpy(digits.x_test[:5])
    assert torch.equal(loaded(x), mlp(x))
    whole = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Linear(64, 10)), whole)
    assert isinstance(load_user_model(whole, digits), nn.Sequential)
    name, _ = get_model(str(sd), digits)
    assert name == str(sd)


def test_user_model_errors(digits, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file")
    with pytest.raises(UserInputError, match="not a torch model file"):
        load_user_model(garbage, digits)
    wrong = tmp_path / "wrong.pt"
    torch.save({"0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(UserInputError, match="matches neither"):
        load_user_model(wrong, digits)
    custom = tmp_path / "custom.pt"
    torch.save(NotSequential(), custom)
    with pytest.raises(UserInputError, match="NotSequential"):
        load_user_model(custom, digits)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(UserInputError, match="not a torch model"):
        load_user_model(tensor, digits)
    with pytest.raises(UserInputError, match="unknown model 'resnet'"):
        get_model("resnet", digits)


class _Payload:
    """Pickles as a call of ``Path.touch``: unpickling it would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_model_file_never_runs_code(digits, tmp_path):
    """A crafted file whose unpickling runs a call is refused before anything runs."""
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"w": _Payload(marker)}, evil)
    with pytest.raises(UserInputError, match="cannot be loaded without running code"):
        load_user_model(evil, digits)
    assert not marker.exists()
    lstm = tmp_path / "lstm.pt"
    torch.save(nn.Sequential(nn.LSTM(64, 10)), lstm)
    with pytest.raises(UserInputError, match="LSTM"):
        load_user_model(lstm, digits)
