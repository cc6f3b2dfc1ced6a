"""The test networks of ``tests/`` (the analytic StubNet and the W1 conformance weights),
for the benchmarks that time the engine without a trained model."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from stubnet import StubNet  # noqa: E402
from w1 import apply_w1, w1_state_dict  # noqa: E402

__all__ = ["StubNet", "apply_w1", "w1_state_dict"]
