"""Helpers for the flow-command tests: write a config as TOML, run the CLI in-process."""

from __future__ import annotations

import json
from pathlib import Path

from aimcflow.models.config import AcceleratorConfig


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def write_config(cfg: AcceleratorConfig, path: Path) -> Path:
    """``cfg`` as a TOML file that ``load_config`` reads back to an equal config."""
    data = cfg.model_dump(mode="json")
    entries = data.pop("layer")  # [[layer]] tables come last
    lines = [
        f"{k} = {_toml_value(v)}"
        for k, v in data.items()
        if not isinstance(v, dict) and v is not None
    ]
    for section, fields in data.items():
        if isinstance(fields, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in fields.items() if v is not None]
    for e in entries:
        lines.append("\n[[layer]]")
        for k, v in e.items():
            if isinstance(v, dict):
                lines += [f"{k}.{f} = {_toml_value(x)}" for f, x in v.items() if x is not None]
            elif v is not None:
                lines.append(f"{k} = {_toml_value(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*argv) -> int:
    """The CLI's exit status, run in-process; argparse's own errors leave ``main`` through
    ``SystemExit``, whose code is returned too."""
    from aimcflow.flows.cli import main

    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code
