"""The config's defaults and ``--quick`` caps as the stages declare them (issue 28): assembled,
they are the dict the suite had before each stage held its own block."""

from __future__ import annotations

import json
from pathlib import Path

from mfsoftmax.bench import config

SNAPSHOT = Path(__file__).resolve().parent / "fixtures" / "config_defaults.json"


def test_assembled_defaults_and_quick_caps_equal_the_snapshot():
    want = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert config.DEFAULTS == want["defaults"]
    assert config.QUICK == want["quick"]
