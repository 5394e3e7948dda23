"""Shared fixtures: the real annotation files in ../shared/data and a copy of the workflow."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AVPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotation files not found at {SHARED_DATA} (set AVPIPE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    """The workflow (Snakefile, workflow/, config/, profiles/) copied into a scratch folder,
    so .snakemake/ and results/ never land in the repository."""
    for name in ("Snakefile", "workflow", "config", "profiles"):
        src = REPO / name
        dst = tmp_path / name
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
    return tmp_path
