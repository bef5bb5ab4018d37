"""The torch.export importer: every supported op equals torch, unsupported ops and unsafe
model files are refused with a message, .pt2 and state-dict files load."""

import zipfile

import numpy as np
import pytest
import torch
from aimcflow.models.errors import UserInputError
from aimcflow.models.nn.convert import AnalogNetwork
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.importer import SUPPORTED_OPS, import_model, load_pt2
from aimcflow.models.nn.workloads import load_user_model
from torch import nn
from torch.nn import functional as F


class AllOps(nn.Module):
    """Every supported op once: residual add, three pools, clamps, mean, reshapes."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(4, 6, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = x.view(-1, 2, 8, 8)
        y = F.relu(self.bn(self.c1(x)))
        y = F.relu6(y + self.c2(y))  # residual add, clamp (0, 6)
        y = F.max_pool2d(y, 3, 1, 1)
        y = F.hardtanh(F.avg_pool2d(y, 2), -0.5, 0.5)
        y = F.leaky_relu(self.c3(y), 0.125)
        y = self.pool(y) + y.mean((2, 3), keepdim=True)
        return self.fc(self.drop(torch.flatten(y, 1)))


def _randomized(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def test_all_supported_ops_equal_torch():
    model = _randomized(AllOps())
    imp = import_model(model, (128,))
    kinds = {type(op).__name__ for op in imp.ops}
    assert kinds == {
        "Reshape",
        "AnalogLayer",
        "BatchNorm",
        "ReLU",
        "Add",
        "Clamp",
        "Pool",
        "LeakyReLU",
    }
    x = torch.rand(7, 128, dtype=torch.float64) * 4
    ref = model.double()(x).detach().numpy()
    net = AnalogNetwork(imp.ops, None, 128, wires=imp.wires, output=imp.output)
    # float64 throughout: agreement to the rounding of a few hundred terms
    np.testing.assert_allclose(net.forward_ideal(x.numpy()), ref, rtol=1e-12, atol=1e-12)


def test_unsupported_op_names_node_op_and_list():
    class Sig(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return torch.sigmoid(self.fc(x))

    with pytest.raises(UserInputError) as e:
        import_model(Sig().eval(), (4,))
    msg = str(e.value)
    assert "graph node 'sigmoid'" in msg and "aten.sigmoid" in msg
    assert all(op in msg for op in SUPPORTED_OPS)


def test_grouped_conv_is_refused():
    model = nn.Sequential(nn.Unflatten(1, (2, 4, 4)), nn.Conv2d(2, 2, 3, groups=2), nn.Flatten())
    with pytest.raises(UserInputError, match="groups=2"):
        import_model(model.eval(), (32,))


def test_pt2_round_trip_and_any_batch(tmp_path):
    model = _randomized(AllOps())
    from aimcflow.models.nn.importer import export_module

    path = tmp_path / "m.pt2"
    torch.export.save(export_module(model, (128,)), path)
    ep = load_pt2(path)
    a, b = import_model(model, (128,)), import_model(ep)
    assert [type(o).__name__ for o in a.ops] == [type(o).__name__ for o in b.ops]
    assert a.wires == b.wires
    x = torch.rand(5, 128)
    torch.testing.assert_close(ep.module()(x), model.float()(x))  # batch 5, exported at 2


def test_pt2_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt2"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/archive_format", "pt2")
        z.writestr("evil/data/constants/opaque_obj_0", b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(UserInputError, match="pickled Python objects"):
        load_pt2(path)


def test_whole_pickled_module_is_refused_with_export_hint(tmp_path):
    digits = load_digits_dataset()
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Linear(64, 10)), path)
    with pytest.raises(UserInputError) as e:
        load_user_model(path, digits)
    assert "never" in str(e.value) and "torch.export.save" in str(e.value)


def test_state_dict_with_arch(tmp_path):
    from aimcflow.models.nn.archs import build

    digits = load_digits_dataset()
    torch.manual_seed(1)
    ref = build("digits-resnet", digits.input_shape, 10).eval()
    path = tmp_path / "sd.pt"
    torch.save(ref.state_dict(), path)
    got = load_user_model(path, digits, arch="digits-resnet")
    x = torch.from_numpy(digits.x_test[:4])
    torch.testing.assert_close(got(x), ref(x))
    with pytest.raises(UserInputError, match="does not match --arch digits-cnn"):
        load_user_model(path, digits, arch="digits-cnn")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_pt2_pickled_weight_cannot_run_code(tmp_path, monkeypatch):
    """A .pt2 whose weight is stored as a pickle (use_pickle) holding code: torch.export.load
    would read it with a full, code-running torch.load; load_pt2 forces the restricted
    unpickler, so the file is refused and nothing runs."""
    import io
    import json

    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.pt2"
    model = nn.Sequential(nn.Linear(4, 2)).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(2, 4),)), good)
    evil = tmp_path / "evil.pt2"
    payload = io.BytesIO()
    torch.save(_Evil(), payload)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("model_weights_config.json"):
                cfg = json.loads(data)
                cfg["config"]["0.weight"]["use_pickle"] = True
                data = json.dumps(cfg).encode()
            elif name.endswith("/weights/weight_0"):
                data = payload.getvalue()
            dst.writestr(name, data)
    with pytest.raises(UserInputError, match="not a readable torch.export archive"):
        load_pt2(evil)
    assert not (tmp_path / "pwned.txt").exists()
