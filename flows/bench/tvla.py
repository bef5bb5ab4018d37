"""Benchmark: secure vs plain MAC — TVLA max|t| at 10 k / 100 k / 1 M traces, harness speed,
cycles per dot product, and Yosys area (cells, transistor estimate) of both MACs and of the
Ascon-AEAD128 decryption core.

Targets (docs/SPEC.md, secure MAC): plain_mac crosses |t| = 4.5 within 10 000 traces; secure_mac stays below
4.5 at 1 000 000 traces for both secrets; 1 000 000 traces in <= 5 min on 2 cores.  The
secure MAC is also assessed under the ``nets`` power model (registers plus every named
combinational net, i.e. Goubin's conversion intermediates).
``AIMCFLOW_TVLA_TRACES`` lowers the trace count for a quick look.
"""

from __future__ import annotations

import os

from aimcflow.cosim.runner import amaranth_verilog
from aimcflow.cosim.tvla.build import build_harness, make_design, run_harness
from aimcflow.flows.synth import as_dict, synthesize
from aimcflow.rtl.ascon import AsconDecrypt, AsconParams


def _at(curve: list[tuple[int, float]], n: int) -> float | None:
    """max|t| at the curve point with exactly ``n`` traces (None if not reached)."""
    for traces, t in curve:
        if traces == n:
            return t
    return None


def main() -> dict:
    traces = int(os.environ.get("AIMCFLOW_TVLA_TRACES", 1_000_000))
    out: dict = {"traces": traces, "tvla": {}, "area": {}}
    print(
        f"{'design':<16} {'secret':<11} {'cyc/dot':>7} {'t@10k':>7} {'t@100k':>7} "
        f"{'t@end':>7} {'cross':>7} {'traces/s':>9} {'tr/cpu_s':>9} {'cpu_s/1M':>8}"
    )
    # the nets power model (registers + the secure MAC's named conversion nets) is about
    # twice as slow per trace; AIMCFLOW_TVLA_NETS_TRACES sets its count (default 100 000)
    nets_traces = int(os.environ.get("AIMCFLOW_TVLA_NETS_TRACES", min(traces, 100_000)))
    runs = [("plain_mac", "registers", traces), ("secure_mac", "registers", traces)]
    runs += [("secure_mac", "nets", nets_traces)] if nets_traces >= 4 else []
    for design, power_model, n_traces in runs:
        h = build_harness(design, power_model=power_model)
        label = design if power_model == "registers" else f"{design}/{power_model}"
        for secret in ("weight", "activation"):
            r = run_harness(h, n_traces, secret, every=min(10_000, max(1, n_traces // 100)))
            row = {
                "cycles_per_dot_product": h.samples,
                "power_model": power_model,
                "register_bits": h.state_bits,
                "max_abs_t": r.max_abs_t,
                "t_10k": _at(r.curve, 10_000),
                "t_100k": _at(r.curve, 100_000),
                "t_1M": _at(r.curve, 1_000_000),
                "first_cross": r.first_cross,
                "traces_per_s": r.traces_per_s,
                "sim_s": r.seconds,
                "traces_per_cpu_s": r.traces_per_cpu_s,
                "cpu_s_per_1M": 1e6 / r.traces_per_cpu_s,
            }
            out["tvla"][f"{label}/{secret}"] = row

            def f(v):
                return "-" if v is None else f"{v:7.2f}"

            print(
                f"{label:<16} {secret:<11} {h.samples:>7} {f(row['t_10k']):>7} "
                f"{f(row['t_100k']):>7} {r.max_abs_t:7.2f} {str(r.first_cross or '-'):>7} "
                f"{r.traces_per_s:9.0f} {r.traces_per_cpu_s:9.0f} {row['cpu_s_per_1M']:8.1f}",
                flush=True,
            )
    blocks = {
        "plain_mac": (make_design("plain_mac"), "plain_mac"),
        "secure_mac": (make_design("secure_mac"), "secure_mac"),
        "ascon_decrypt": (AsconDecrypt(AsconParams(max_blocks=64)), "ascon_decrypt"),
    }
    print(f"\n{'block':<14} {'cells':>8} {'transistors':>12} {'memory bits':>12}")
    for name, (comp, top) in blocks.items():
        a = synthesize(amaranth_verilog(comp, top), top)
        out["area"][name] = as_dict(a)
        print(f"{name:<14} {a.cells:>8} {a.transistors:>12} {a.memory_bits:>12}", flush=True)
    p, s = out["area"]["plain_mac"], out["area"]["secure_mac"]
    print(
        f"secure / plain: cells x{s['cells'] / p['cells']:.2f}, "
        f"transistors x{s['transistors'] / p['transistors']:.2f}"
    )
    return out


if __name__ == "__main__":
    main()
