"""Level 4 of digits-vit's special-function-unit ops: the SFU jobs level 3 ran on the golden
model, replayed on the Verilated SFU (cosim/network/sfu_replay.py) with random stalls, every
output value compared with level 3's; a corrupted expectation must be caught."""

from __future__ import annotations

import numpy as np
import pytest
from aimcflow.cosim.network import sfu_replay
from aimcflow.cosim.runner import CosimFailure
from aimcflow.models.config import load_config
from aimcflow.models.nn.compiler import compile_network
from aimcflow.models.nn.convert import convert
from aimcflow.models.nn.data import load_digits_dataset
from aimcflow.models.nn.golden import forward_golden
from aimcflow.models.nn.workloads import imported, pretrained


@pytest.fixture(scope="module")
def jobs_and_build():
    digits = load_digits_dataset()
    cfg = load_config("baseline-ftj")
    net = convert(imported(pretrained("digits-vit", digits), digits), cfg)
    prog = compile_network(net, digits.x_train[:512], t_s=cfg.noise.t_inference_s)
    jobs: list = []
    forward_golden(prog, digits.x_test[:2], np.arange(2), sfu_jobs=jobs)
    return jobs, cfg, sfu_replay.build_sfu(cfg)


def test_sfu_rtl_matches_level3_on_every_value(jobs_and_build):
    jobs, cfg, build = jobs_and_build
    ops = {j["op"] for j in jobs}
    assert ops == {"matmul", "softmax", "layernorm", "gelu"}
    r = sfu_replay.replay(jobs, cfg, build, stalls=0.25, seed=3)
    assert r["mismatches"] == 0, r["errors"]
    assert sum(r["values"].values()) == sum(j["y"].size for j in jobs)


def test_sfu_replay_catches_a_wrong_value(jobs_and_build):
    jobs, cfg, build = jobs_and_build
    bad = [dict(j) for j in jobs]
    k = next(i for i, j in enumerate(bad) if j["op"] == "softmax")
    y = bad[k]["y"].copy()
    y[0, 0] += 1
    bad[k]["y"] = y
    with pytest.raises(CosimFailure):
        sfu_replay.replay(bad, cfg, build)
