"""The JSON view (``--format json``): every row with full values, for machines."""

from __future__ import annotations

import json
import math

from .rows import CompareResult


def format_json(res: CompareResult, labels=("baseline", "current")) -> str:
    """The result as JSON, every row with full values (infinite ratios become null)."""
    d = res.to_dict()
    d["baseline"], d["current"] = labels
    for row in d["rows"]:
        for key in ("ratio", "norm_ratio", "delta", "baseline", "current"):
            v = row[key]
            if isinstance(v, float) and not math.isfinite(v):
                row[key] = None
    return json.dumps(d, indent=2) + "\n"
