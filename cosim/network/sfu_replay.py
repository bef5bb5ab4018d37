"""Level 4 for a transformer's special-function-unit ops: the SFU jobs level 3 ran on the
golden model (``models/nn/seq_steps.py`` records them: operands, registers, outputs) are
streamed through the Verilated SFU (``rtl/sfu.py``, bench ``cosim/benches/sfu.py``
``job_list``) and every output value is compared with level 3's.

This is a replay: the SFU RTL's outputs are checked against level 3 but the network run
(``periphery_top`` in the loop) carries level 3's SFU outputs forward, not the RTL's.
With 0 mismatches the two are the same integers, so the logits would not change.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aimcflow.cosim.benches import sfu as bench
from aimcflow.cosim.rtlparams import sfu_params
from aimcflow.models.periphery.sfu import SfuParams


def build_sfu(cfg, sim: str = "verilator"):
    """The cached build of the SFU of ``cfg``'s ``[sfu]`` section."""
    return bench.build(sfu_params(cfg), sim=sim)


def replay(jobs: list[dict], cfg, build=None, stalls: float = 0.0, seed: int = 1) -> dict:
    """Stream ``jobs`` through the SFU RTL (``stalls``: fraction of cycles the source is
    idle and the sink holds off); returns the bench's result (rows, values per op,
    mismatches, errors, cycles)."""
    build = build_sfu(cfg) if build is None else build
    with tempfile.TemporaryDirectory(prefix="aimcflow-sfu-") as d:
        path = Path(d) / "jobs.npz"
        bench.write_job_list(path, jobs)
        params = bench.bench_params(
            sfu_params(cfg),
            SfuParams.from_config(cfg),
            seed=seed,
            p_valid=1.0 - stalls,
            p_ready=1.0 - stalls,
            **{"in": str(path)},
        )
        return build.run(bench.MODULE, params, testcase="job_list").result
