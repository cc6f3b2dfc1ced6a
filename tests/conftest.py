"""Shared fixtures.

``../shared`` (conformance vectors, DSB2018 data) sits next to the checkout on development
machines and in CI. Data-bound tests skip with a visible reason when it is absent; the
conformance tests are expected to run in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NAPARI_FCFI_SHARED", REPO.parent / "shared"))
CONFORMANCE = SHARED / "conformance"
DSB = SHARED / "data" / "dsb2018"


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if not (CONFORMANCE / "README.md").exists():
        pytest.skip(f"conformance vectors not found at {CONFORMANCE} (set NAPARI_FCFI_SHARED)")
    return CONFORMANCE


@pytest.fixture(scope="session")
def dsb_dir() -> Path:
    if not (DSB / "index.json").exists():
        pytest.skip(f"DSB2018 data not found at {DSB} (set NAPARI_FCFI_SHARED)")
    return DSB


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    import torch

    torch.set_num_threads(2)
