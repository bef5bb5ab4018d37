"""The HTML report of ``aimcflow run``: one self-contained file (plots embedded as PNG).

Plots: accuracy per level; analog-float accuracy over drift time (mean ± std over
repeats); per-layer VMM scatter, analog-float output against the ideal product; per-layer
bound-management iteration histogram and ADC saturation rate at level 3.  Level 4: the
comparison with level 3 and the cycle counts per layer as a table.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from aimcflow.flows.args import fmt_duration
from aimcflow.flows.io import write_text_atomic

VMM_ERROR = (
    "relative VMM error = ||y_analog - y_ideal||_2 / ||y_ideal||_2 over the sampled outputs "
    "of the layer's matrix product (bias excluded), first 64 test images"
)


def _level(key: str) -> str:
    """results.json level keys (analog_float) as the CLI spells the level (analog-float)."""
    return key.replace("_", "-")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _img(fig, alt: str) -> str:
    import matplotlib.pyplot as plt  # lazy: matplotlib (~1 s), after write_report's Agg

    tag = f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'
    plt.close(fig)
    return tag


def _drift_plot(plt, results: dict, table: list) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    t = [r["drift_s"] for r in table]
    ax.errorbar(
        t,
        [100 * r["accuracy_mean"] for r in table],
        yerr=[100 * r["accuracy_std"] for r in table],
        marker="o",
        capsize=3,
        lw=2.5,
        color="tab:blue",
        label="analog-float (mean ± std)",
        zorder=2,
    )
    # drawn last and dashed in a contrasting colour: visible even where it coincides
    ax.axhline(
        100 * results["levels"]["float"]["accuracy"],
        color="tab:red",
        ls=(0, (4, 3)),
        lw=1.5,
        label="float",
        zorder=3,
    )
    ax.set_xscale("log")
    ax.set_xticks(t, [fmt_duration(v) for v in t])
    ax.minorticks_off()
    ax.set_xlabel("time since programming")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("accuracy over drift time")
    return _img(fig, "accuracy over drift time")


def write_report(path: str | Path, results: dict, pairs: list) -> Path:
    """Write the report for ``results`` (the run's results.json dict) and the per-layer
    ``pairs`` of :func:`aimcflow.models.nn.evaluate.vmm_pairs`."""
    import matplotlib  # lazy: matplotlib (~1 s); pyplot only after selecting Agg

    matplotlib.use("Agg")
    # lazy: matplotlib.pyplot, numpy (after the backend is chosen)
    import matplotlib.pyplot as plt
    import numpy as np

    repeats = (
        f"{results['repeats']} repeat{'s' if results['repeats'] > 1 else ''} (analog-float), "
        if results["drift_table"]
        else ""
    )
    parts = [
        f"<h1>aimcflow run: {html.escape(str(results['model']))} under "
        f"{html.escape(str(results['config']))}</h1>",
        f"<p>{results['images']} test images, {repeats}reference drift "
        f"{fmt_duration(results['drift_s'])} after programming, wall "
        f"{fmt_duration(round(results['wall_s'], 1))}.</p>",
    ]

    levels = [(_level(k), v.get("accuracy")) for k, v in results["levels"].items()]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    names = [k for k, a in levels if a is not None]
    bars = ax.bar(names, [100 * a for k, a in levels if a is not None], color="tab:blue")
    ax.bar_label(bars, fmt="%.2f %%", fontsize=8)
    ax.tick_params(axis="x", labelsize=9)
    ax.set_ylabel("test accuracy (%)")
    lo = min(100 * a for _, a in levels if a is not None)
    ax.set_ylim(max(0, lo - 5), 101)
    ax.set_title("accuracy per level")
    parts.append(_img(fig, "accuracy per level"))
    skipped = [k for k, a in levels if a is None]
    if skipped:
        parts.append(f"<p>Levels not run: {', '.join(skipped)}.</p>")

    table = results["drift_table"]
    if table:
        parts.append(_drift_plot(plt, results, table))
    else:
        parts.append("<p>analog-float drift sweep not run.</p>")

    if pairs:
        fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.2), squeeze=False)
        for ax, (name, ideal, analog) in zip(axes[0], pairs, strict=True):
            ax.plot(ideal, analog, ".", ms=2, alpha=0.4)
            m = float(np.max(np.abs(ideal))) or 1.0
            ax.plot([-m, m], [-m, m], "k-", lw=0.8)
            err = np.linalg.norm(analog - ideal) / max(np.linalg.norm(ideal), 1e-30)
            ax.set_title(f"layer {name}: VMM error {err:.3f}", fontsize=10)
            ax.set_xlabel("ideal x @ W")
        axes[0][0].set_ylabel("analog-float x @ W")
        fig.tight_layout()
        fig.text(
            0.5, -0.04, "VMM error = ||y_analog - y_ideal||₂ / ||y_ideal||₂", ha="center", va="top"
        )
        parts.append("<h2>VMM error per layer (analog-float, reference drift)</h2>")
        parts.append(_img(fig, "VMM scatter per layer"))
        parts.append(f"<p>{html.escape(VMM_ERROR)}.</p>")

    golden = results["levels"].get("analog_golden") or {}
    if golden.get("layers"):
        lays = golden["layers"]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
        width = 0.8 / len(lays)
        for j, lay in enumerate(lays):
            hist = np.asarray(lay["bm_iterations_hist"], dtype=float)
            a1.bar(
                np.arange(len(hist)) + j * width,
                hist / max(hist.sum(), 1),
                width,
                label=f"layer {lay['name']}",
            )
        a1.set_xlabel("bound-management iterations")
        a1.set_ylabel("fraction of vectors")
        a1.legend()
        sat = [100 * lay["adc_sat_rate"] for lay in lays]
        bars = a2.bar([f"layer {lay['name']}" for lay in lays], sat, color="tab:orange")
        a2.bar_label(bars, fmt="%.2f %%", fontsize=8)
        a2.set_ylabel("ADC saturated vectors (%)")
        a2.set_ylim(bottom=0, top=max(1.0, 1.2 * max(sat)))
        if not any(sat):  # an empty-looking panel would read as a missing plot
            a2.text(0.5, 0.6, "no ADC saturation in any layer", ha="center", transform=a2.transAxes)
        parts.append("<h2>Management at level 3 (analog-golden)</h2>")
        parts.append(_img(fig, "bound management and saturation"))
        rows = "".join(
            f"<tr><td>layer {html.escape(lay['name'])}</td><td>{lay['shrink_k']}</td>"
            f"<td>{lay['gain_bits_used']:.1f}</td><td>{lay['mult_bits_used']:.1f}</td>"
            f"<td>{lay['in_scale']:.4g}</td><td>{lay['out_scale']:.4g}</td></tr>"
            for lay in lays
        )
        parts.append(
            "<table border=1 cellpadding=3><tr><th>layer</th><th>shrink k</th>"
            "<th>gain bits</th><th>mult bits</th><th>input LSB</th><th>output LSB</th>"
            f"</tr>{rows}</table>"
        )
    elif golden.get("reason"):
        parts.append(f"<p>analog-golden not run: {html.escape(golden['reason'])}</p>")

    rtl = results["levels"].get("analog_rtl") or {}
    if rtl.get("layers"):
        eff = rtl.get("cycle_efficiency")
        parts.append(
            "<h2>analog-rtl (Verilated periphery in the loop)</h2>"
            f"<p>{rtl['activations_compared']} activations compared with analog-golden, "
            f"{rtl['mismatches']} mismatches; RTL cycles {rtl['rtl_cycles']}, ideal "
            f"{rtl['ideal_cycles']}, cycle efficiency {'-' if eff is None else f'{eff:.3f}'}; "
            f"Verilator build {rtl['verilator_build_s']:.1f} s.</p>"
        )
        rows = "".join(
            f"<tr><td>{html.escape(lay['name'])}</td><td>{lay['activations']}</td>"
            f"<td>{lay['rtl_cycles']}</td><td>{lay['ideal_cycles']}</td>"
            f"<td>{lay['ideal_cycles'] / max(lay['rtl_cycles'], 1):.3f}</td>"
            f"<td>{100 * lay['adc_sat_rate']:.2f}</td></tr>"
            for lay in rtl["layers"]
        )
        parts.append(
            "<table border=1 cellpadding=3><tr><th>layer</th><th>activations</th>"
            "<th>RTL cycles</th><th>ideal cycles</th><th>efficiency</th>"
            f"<th>ADC saturated (%)</th></tr>{rows}</table>"
        )
    elif rtl.get("reason"):
        parts.append(f"<p>analog-rtl not run: {html.escape(rtl['reason'])}</p>")

    doc = (
        "<!doctype html><html><head><meta charset='utf-8'><title>aimcflow run</title>"
        "</head><body style='font-family: sans-serif'>" + "\n".join(parts) + "</body></html>"
    )
    path = Path(path)
    write_text_atomic(path, doc)
    return path
