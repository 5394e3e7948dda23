"""The ``report:`` section of config/config.yaml (workflow/schemas/report.schema.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TSNEConfig:
    max_points: int = 1000  # training samples per panel (a fixed random subset beyond that)
    perplexity: float = 30.0  # capped at (n - 1) / 3 for small sets


@dataclass(frozen=True)
class TimelineConfig:
    n_videos: int = 4  # test videos drawn, the first ones by sample id that have an event
    split: str = "test"
    # AVVP: binarise as avpipe evaluate scored this setting (a key of avvp.evaluate.settings,
    # or "selected" for its per-class thresholds); the title names the thresholds
    avvp_setting: str = "fixed"


@dataclass(frozen=True)
class ReportConfig:
    seeds: list[int] | None = None  # None: every seed found; else only these seeds
    precision: int = 1  # decimals in the Markdown tables (TSV keeps full precision)
    published: bool = True  # print the papers' numbers beside ours
    dpi: int = 120
    tsne: TSNEConfig = field(default_factory=TSNEConfig)
    timelines: TimelineConfig = field(default_factory=TimelineConfig)
