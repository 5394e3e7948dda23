"""Evaluation outputs -> runs, and mean ± std over seeds.

A run is one ``metrics.json`` written by ``avpipe evaluate`` at

    results/evaluate/<stage>/<dataset>/<experiment>/seed<s>[/round<k>]/metrics.json

(``<experiment>`` is the method name for stages that train several methods).  Its
siblings (``per_class.tsv``, ``mapping.tsv``) and the training folder named in the
file's ``predictions`` entry (``predictions.npz``, ``history.tsv``, ``embeddings.npz``,
``summary.json``) are found from there; any of them may be absent.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PATH_RE = re.compile(
    r"(?:^|/)evaluate/(?P<stage>[^/]+)/(?P<dataset>[^/]+)/(?P<experiment>[^/]+)/"
    r"seed(?P<seed>\d+)(?:/round(?P<round>\d+))?/metrics\.json$"
)


@dataclass(frozen=True)
class Run:
    path: Path
    stage: str
    dataset: str
    experiment: str
    seed: int
    round: int | None
    task: str
    metrics: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    predictions: Path | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.stage, self.dataset, self.experiment)

    @property
    def train_dir(self) -> Path | None:
        """Folder of the training stage that wrote the evaluated predictions."""
        return self.predictions.parent if self.predictions is not None else None


def parse_path(path: str | Path) -> dict[str, Any]:
    m = PATH_RE.search(Path(path).as_posix())
    if m is None:
        raise ValueError(
            f"{path}: not an evaluation output; expected "
            "results/evaluate/<stage>/<dataset>/<experiment>/seed<s>[/round<k>]/metrics.json"
        )
    d = m.groupdict()
    return {
        "stage": d["stage"],
        "dataset": d["dataset"],
        "experiment": d["experiment"],
        "seed": int(d["seed"]),
        "round": None if d["round"] is None else int(d["round"]),
    }


def load_run(path: str | Path) -> Run:
    path = Path(path)
    where = parse_path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data.get("metrics"), dict):
        raise ValueError(f"{path}: no 'metrics' mapping")
    metrics = {
        k: float(v)
        for k, v in data["metrics"].items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    pred = data.get("predictions")
    return Run(
        path=path,
        task=str(data.get("task", where["stage"])),
        metrics=metrics,
        info=dict(data.get("info", {})),
        config_hash=str(data.get("config_hash", "")),
        versions=dict(data.get("versions", {})),
        predictions=Path(pred) if pred else None,
        **where,
    )


def load_runs(paths: Iterable[str | Path], seeds: list[int] | None = None) -> list[Run]:
    """Runs sorted by (stage, dataset, experiment, round, seed); ``seeds`` filters."""
    runs = [load_run(p) for p in paths]
    if seeds is not None:
        runs = [r for r in runs if r.seed in set(seeds)]
    return sorted(runs, key=lambda r: (*r.key, r.round or 0, r.seed))


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float  # sample standard deviation (ddof=1); NaN for a single seed
    n: int

    def fmt(self, decimals: int) -> str:
        if math.isnan(self.mean):
            return "–"
        if self.n < 2:
            return f"{self.mean:.{decimals}f}"
        return f"{self.mean:.{decimals}f} ± {self.std:.{decimals}f}"


def stat(values: list[float]) -> Stat:
    n = len(values)
    if n == 0:
        return Stat(math.nan, math.nan, 0)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return Stat(mean, std, n)


@dataclass
class Group:
    """The runs of one (stage, dataset, experiment, round) across seeds."""

    stage: str
    dataset: str
    experiment: str
    round: int | None
    runs: list[Run]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    def metric_names(self) -> list[str]:
        """Metrics every run of the group has, in the first run's order."""
        names = list(self.runs[0].metrics)
        return [n for n in names if all(n in r.metrics for r in self.runs)]

    def stat(self, name: str) -> Stat:
        return stat([r.metrics[name] for r in self.runs if name in r.metrics])


def group_runs(runs: list[Run]) -> list[Group]:
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        groups[(*r.key, r.round)].append(r)
    return [
        Group(stage, ds, exp, rnd, rs)
        for (stage, ds, exp, rnd), rs in sorted(
            groups.items(), key=lambda kv: (*kv[0][:3], kv[0][3] or 0)
        )
    ]


def by_experiment(groups: list[Group]) -> dict[tuple[str, str, str], list[Group]]:
    """(stage, dataset, experiment) -> its groups, one per round (ordered)."""
    out: dict[tuple[str, str, str], list[Group]] = defaultdict(list)
    for g in groups:
        out[(g.stage, g.dataset, g.experiment)].append(g)
    return dict(out)


def provenance(runs: list[Run]) -> dict[str, Any]:
    """What made a table: metric files, seeds, config hashes, package versions."""
    versions: dict[str, set[str]] = defaultdict(set)
    for r in runs:
        for k, v in r.versions.items():
            versions[k].add(str(v))
    return {
        "metrics_files": [str(r.path) for r in runs],
        "seeds": sorted({r.seed for r in runs}),
        "config_hashes": sorted({r.config_hash for r in runs if r.config_hash}),
        "versions": {k: ", ".join(sorted(v)) for k, v in sorted(versions.items())},
    }


def read_tsv(path: Path) -> list[dict[str, str]]:
    """A TSV with a header row as dicts (empty list when the file is absent or empty)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line]


def read_summary(run: Run) -> dict[str, Any]:
    """The training stage's summary.json (config + provenance), {} when absent."""
    d = run.train_dir
    if d is None or not (d / "summary.json").is_file():
        return {}
    try:
        return json.loads((d / "summary.json").read_text())
    except json.JSONDecodeError:
        return {}


def find_key(obj: Any, suffix: str) -> Any:
    """First value whose key ends with ``suffix`` in a nested mapping (depth-first)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and k.endswith(suffix) and not isinstance(v, dict | list):
                return v
        for v in obj.values():
            found = find_key(v, suffix)
            if found is not None:
                return found
    return None


def features_of(run: Run) -> str:
    """'visual + audio' recipe names of a run, from its training summary ('–' if unknown)."""
    s = read_summary(run)
    parts = [find_key(s, "visual_recipe"), find_key(s, "audio_recipe")]
    parts = [str(p) for p in parts if p]
    return " + ".join(parts) if parts else "–"
