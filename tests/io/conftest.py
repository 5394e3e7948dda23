"""Fixtures of the io tests: media files made on the fly (tests/io/avmedia.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from avmedia import make_media


@pytest.fixture
def media(tmp_path: Path):
    """``media(name, seconds, **kw)`` -> path of a new clip in tmp_path (see make_media)."""

    def make(name: str, seconds: float, **kw) -> Path:
        return make_media(tmp_path / name, seconds, **kw)

    return make
