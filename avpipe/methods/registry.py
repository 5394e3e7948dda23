"""``METHODS``: every trainable method, by name, in one place.

The workflow reads this table (workflow/rules/functions.smk) to build its method rules,
evaluation rules, targets and code hashes, and ``avpipe <stage>`` reads it to list and
import methods, so adding a method is a package plus one entry here (docs/extending.md).
Entries are plain strings: importing the registry imports no torch and no method code,
so Snakemake can read it when it builds the DAG.

``family`` is the config.yaml section that holds the method's settings and datasets and
``stage`` the rule / ``avpipe`` sub-command / ``results/<stage>/`` folder that trains it.
The three built-in families have their own stages (``em`` for CLCL, ``cpsp``, ``avvp``);
a new family uses the generic ``train`` stage (avpipe/stages/train.py), which calls

    trainer(cfg, manifest, stores, seed) -> Trained
    predict(trained, cfg, manifest, stores) -> {name: array}   # the task's predictions.npz

with ``cfg`` its config dataclass built from the resolved section, ``stores`` the
feature stores named by ``stores`` (keys of ``cfg.data``, each a recipe: {key: path})
and ``Trained`` below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

# Sources that every training job of the generic ``train`` stage runs.
TRAIN_CODE = ("stages/train", "methods/registry", "training/checkpoint", "training/epochs")


@dataclass
class Trained:
    """What a generic-``train`` trainer returns; the stage writes it (avpipe/stages/train.py)."""

    state: dict[str, Any]  # the model's state_dict -> model.pt
    history: list[dict[str, Any]]  # one row per epoch -> history.tsv
    model: Any = None  # what the method's predict function needs
    meta: dict[str, Any] = field(default_factory=dict)  # more model.pt entries (best_epoch, ...)


@dataclass(frozen=True)
class Method:
    family: str  # config.yaml section of its settings (and `datasets` list)
    stage: str  # rule, CLI sub-command and results/<stage>/ folder of its training job
    config: str  # "module:Class" of its config dataclass (the source of its defaults)
    trainer: str  # "module:callable" that trains it
    predict: str  # "module:callable" that writes/returns its predictions
    task: str  # evaluation task of avpipe.metrics.TASKS (also the report's section)
    code: tuple[str, ...]  # avpipe sources (under avpipe/, no .py) its training job runs
    stores: tuple[str, ...] = ()  # train stage: keys of its `data` config naming stores
    before: tuple[str, ...] = ()  # stages that train it before `stage` (CLCL: pretrain, ...)
    label: str = ""  # the name shown to people


METHODS: dict[str, Method] = {
    "clcl": Method(
        family="unsupervised",
        stage="em",
        config="avpipe.methods.clcl.config:EMStage",
        trainer="avpipe.methods.clcl.stages:run_em_round",
        predict="avpipe.methods.clcl.localizer:infer",
        task="unsupervised",
        code=(
            *(
                f"methods/clcl/{m}"
                for m in (
                    "__init__",
                    "cli",
                    "config",
                    "data",
                    "losses",
                    "memory",
                    "model",
                    "pretrain",
                    "stages",
                )
            ),
            "training/loop",
            "training/epochs",
            "training/checkpoint",
            "training/streams",
            "training/data",
            "training/device",
            "io/store",
            "datasets/manifest",
            "utils/provenance",
        ),
        before=("pretrain", "selflabel"),
        label="CLCL (Bao et al., AAAI 2023)",
    ),
    "cpsp": Method(
        family="cpsp",
        stage="cpsp",
        config="avpipe.methods.cpsp.config:CpspStage",
        trainer="avpipe.methods.cpsp.experiment:run_experiment",
        predict="avpipe.methods.cpsp.experiment:predict",
        task="ave",
        code=("methods/cpsp", "training", "io/store", "datasets/manifest", "metrics/ave"),
        label="PSP / CPSP / SSPSP",
    ),
    "han": Method(
        family="avvp",
        stage="avvp",
        config="avpipe.methods.han.trainer:Config",
        trainer="avpipe.methods.han.trainer:Trainer",
        predict="avpipe.methods.avvp:collect_predictions",
        task="avvp",
        code=("methods/han", "methods/coleaf"),
        label="HAN (Tian et al., ECCV 2020)",
    ),
    "coleaf": Method(
        family="avvp",
        stage="avvp",
        config="avpipe.methods.coleaf.trainer:Config",
        trainer="avpipe.methods.coleaf.trainer:Trainer",
        predict="avpipe.methods.avvp:collect_predictions",
        task="avvp",
        code=("methods/han", "methods/coleaf"),
        label="CoLeaF (Sardari et al., ECCV 2024)",
    ),
}

# Sources of each stage beyond its methods' own (the stage's entry point and shared code).
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "pretrain": ("stages/pretrain",),
    # editing the annotator or the localizer does not rerun pretraining
    "selflabel": ("methods/clcl/annotator", "methods/clcl/localizer", "stages/selflabel"),
    "em": ("methods/clcl", "stages/em", "localize/inputs"),
    "avvp": (
        "methods/avvp",
        "training/loop",
        "training/epochs",
        "training/streams",
        "training/checkpoint",
        "training/data",
        "training/device",
        "datasets/avvp",
        "datasets/manifest",
        "io/store",
        "metrics/avvp",
        "stages/avvp",
        "localize/inputs",
    ),
    "cpsp": ("stages/cpsp", "localize/inputs"),
    "train": TRAIN_CODE,
}

# Sources of each evaluation task (``avpipe evaluate --task``).
TASK_CODE: dict[str, tuple[str, ...]] = {
    "ave": ("metrics/__init__", "metrics/ave", "stages/evaluate", "datasets/manifest"),
    "unsupervised": (
        "metrics/__init__",
        "metrics/unsupervised",
        "metrics/ave",
        "stages/evaluate",
        "datasets/manifest",
    ),
    "avvp": (
        "metrics/__init__",
        "metrics/avvp",
        "metrics/unav",
        "config",
        "stages/evaluate",
        "datasets/manifest",
    ),
}
TASK_CODE["unav100"] = TASK_CODE["avvp"]  # one rule evaluates both (by dataset format)


def get(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def methods_of(family: str) -> list[str]:
    """Names of the methods whose settings live in config section ``family``."""
    return [n for n, m in METHODS.items() if m.family == family]


def of_stage(stage: str) -> list[str]:
    """Names of the methods trained by ``stage`` (as their evaluated stage or before it)."""
    return [n for n, m in METHODS.items() if stage == m.stage or stage in m.before]


def stage_code(stage: str) -> tuple[str, ...]:
    """Sources a stage's training jobs run: its own and those of all its methods."""
    own = [c for n in of_stage(stage) for c in METHODS[n].code]
    return tuple(dict.fromkeys((*own, *STAGE_CODE.get(stage, ()))))


def method_code(name: str) -> tuple[str, ...]:
    """Sources of one generic-``train`` method's jobs: its own and the stage's."""
    return tuple(dict.fromkeys((*get(name).code, *STAGE_CODE["train"])))


def generic() -> list[str]:
    """Methods trained by the generic ``train`` stage (the families added after the
    three built-in ones)."""
    return of_stage("train")


def load(ref: str) -> Any:
    """The object named by ``"module:attribute"``."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
