from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE_MOTION_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference_motion"


@pytest.fixture(scope="session")
def reference_motion_dir() -> Path:
    """The real recordings in ../shared/reference_motion/ (skips when this checkout has no shared folder)."""
    if not REFERENCE_MOTION_DIR.is_dir():
        pytest.skip(f"real reference recordings not found at {REFERENCE_MOTION_DIR}")
    return REFERENCE_MOTION_DIR
