"""Level 3's own count of the ops between layers: per op step, the unit jobs and the output
values of those jobs, for comparing with what level 4 reports it ran on the RTL."""

from __future__ import annotations

import numpy as np
from aimcflow.models.nn.golden import input_codes, layer_forward
from aimcflow.models.nn.schedule import golden_add, golden_pool, walk
from aimcflow.models.nn.seq_steps import SFU_KINDS, run_step


def op_values(prog, x: np.ndarray) -> dict[str, tuple[int, int]]:
    """Per op step of level 3 on images ``x``: (unit jobs, output values of those jobs),
    from its own schedule walk: the SFU jobs ``run_step`` records, one job per residual
    add, pooling, constant add and token mean with the step's output."""
    out: dict[str, tuple[int, int]] = {}
    gen = walk(prog, input_codes(prog, x), ops=True)
    try:
        step, ins = next(gen)
        while True:
            jobs: list = []
            if step.kind == "stage":
                y = layer_forward(prog, step.index, ins[0], np.arange(len(x)))
            elif step.kind == "add":
                y = golden_add(prog, step.index, *ins)
            elif step.kind == "pool":
                y = golden_pool(prog, step.index, ins[0])
            else:
                y = run_step(prog.seqs[step.index], ins, prog.cfg, jobs=jobs)
            if step.kind in SFU_KINDS:
                out[step.name] = (len(jobs), sum(int(j["y"].size) for j in jobs))
            elif step.kind != "stage":
                out[step.name] = (1, int(np.size(y)))
            step, ins = gen.send(y)
    except StopIteration:
        pass
    return out
