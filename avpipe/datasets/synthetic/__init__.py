"""The embedded default dataset: synthetic audio-visual events as real MP4 files.

``generate(resolve(cfg), "ave" | "llp", out_dir)`` writes H.264 + AAC videos and
their annotations in the real AVE or LLP layout, which ``avpipe.datasets.ave``
and ``avpipe.datasets.llp`` then read like the real datasets.  Deterministic:
the same config gives byte-identical annotations and identical decoded media.

Modules: ``config`` (presets, typed config), ``classes`` (visual + audio
signatures), ``plan`` (tracks, ids, seeds), ``render`` (frames, audio),
``write`` (MP4), ``ave`` / ``llp`` (video plans + annotation writers),
``generate`` (one part into a folder).
"""

from avpipe.datasets.synthetic.config import PRESETS, SyntheticConfig, resolve
from avpipe.datasets.synthetic.generate import generate

__all__ = ["PRESETS", "SyntheticConfig", "generate", "resolve"]
