"""The one ``json.dumps(default=...)`` hook of the project: numpy scalars and arrays, paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def json_default(o: Any) -> Any:
    """JSON-ready stand-in for ``o``: numpy integers -> int, floats -> float, arrays -> nested
    lists, paths -> str; anything else raises ``TypeError`` as ``json`` expects."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
