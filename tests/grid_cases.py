"""Store attributes for the loaders' segment-grid checks (avpipe.io.store.check_grid).

Each case stamps attributes onto one store of a fixture dataset on the 1-s grid;
``error`` is None when the loader must accept the store, else a pattern its
GridMismatchError must match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zarr

ONE_SECOND = {"grid": {"hop_s": 1.0, "window_s": 1.0, "placement": "segment"}}
CASES: dict[str, tuple[dict[str, Any], str | None]] = {
    "grid hop 0.32": (
        {"grid": {"hop_s": 0.32, "window_s": 0.96, "placement": "segment"}},
        r"grid \(hop 0.32 s, window 0.96 s\) differs from the dataset's \(hop 1 s, window 1 s\)",
    ),
    "legacy vggish": (
        {"modality": "audio", "hop_s": 0.96, "window_s": 0.975},
        r"hop 0.96 s, window 0.975 s, no 'grid' attribute\) was written before extraction",
    ),
}


def stamp(store: Path, attrs: dict[str, Any]) -> None:
    """Add ``attrs`` to the attributes of the feature store ``store``, in place."""
    zarr.open_group(str(store), mode="r+").attrs.update(attrs)
