"""The DAG builds, validates its config and lints clean; a config typo stops it by name."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from workflow_helpers import copy_workflow, snakemake_at_once

from avpipe.workflow_checks import (
    avvp_problems,
    cpsp_problems,
    dataset_problems,
    did_you_mean,
    family_problems,
    recipe_problems,
    released_problems,
)

REPO = Path(__file__).resolve().parents[1]
DEFINED = "(defined: synth_ave, synth_llp); did you mean"
DryRun = Callable[[str], subprocess.CompletedProcess[str]]  # the `dry_run` fixture


def test_dry_run_of_all_builds_the_dag(dry_run: DryRun) -> None:
    # -p prints each job's shell command with its resolved --config-json
    r = dry_run("all")
    assert r.returncode == 0, r.stdout + r.stderr
    # an AVVP variant: the method's job with the variant's own changes over the synthetic
    # override of the method (d_model 64)
    lines = [ln.removeprefix("Shell command: ") for ln in r.stdout.splitlines()]
    avvp = [ln for ln in lines if ln.startswith("avpipe avvp ") and "coleaf_cmpae/seed0" in ln]
    assert len(avvp) == 1 and "--method coleaf " in avvp[0]
    assert '"anchor_backbone":"cmpae"' in avvp[0] and '"fuse_no_cross":0.3' in avvp[0]
    assert '"d_model":64' in avvp[0]


def test_unknown_config_key_is_named(dry_run: DryRun) -> None:
    r = dry_run("run.not_a_key")
    assert r.returncode != 0
    assert "not_a_key" in r.stdout + r.stderr


def test_bad_value_is_named(dry_run: DryRun) -> None:
    r = dry_run("run.device")
    assert r.returncode != 0
    assert "tpu" in r.stdout + r.stderr


def test_lint_reports_only_the_conda_finding(dry_run: DryRun) -> None:
    r = dry_run("lint")
    import json

    out = r.stdout[r.stdout.find("{") :]
    report = json.loads(out) if out.strip() else {"snakefiles": [], "rules": []}
    findings = [lint["title"] for s in report.get("snakefiles", []) for lint in s.get("lints", [])]
    findings += [
        lint["title"] for rule in report.get("rules", []) for lint in rule.get("lints", [])
    ]
    other = [f for f in findings if "conda" not in f.lower() and "container" not in f.lower()]
    assert other == [], other


def config_error(dry_run: DryRun, name: str) -> str:
    """The output of the dry run ``name`` of ``all`` (an edited config); it must fail."""
    r = dry_run(name)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    assert "Traceback" not in out and "Job stats" not in out, out
    return out


def _set(dotted: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = dotted.split(".")

    def edit(cfg: dict[str, Any]) -> None:
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return edit


def _rename(dotted: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def edit(cfg: dict[str, Any]) -> None:
        node = cfg
        for part in dotted.split("."):
            node = node[part]
        node[new] = node.pop(old)

    return edit


# A typo in a dataset (or recipe) name used to drop that study or store from the DAG.
# ConfigError lists every problem, one line each, so the typos share two dry runs (the
# two renames under extract.overrides cannot be in one config): TYPO_GROUP.
TYPOS = {  # case id -> (edit of the default config, the line naming it)
    "unsupervised.datasets": (
        _set("unsupervised.datasets", ["synth_avee"]),
        f"config: unsupervised.datasets lists 'synth_avee', which is not defined "
        f"under datasets {DEFINED} 'synth_ave'?",
    ),
    "cpsp.datasets": (
        _set("cpsp.datasets", ["synth_avee"]),
        f"config: cpsp.datasets lists 'synth_avee', which is not defined under "
        f"datasets {DEFINED} 'synth_ave'?",
    ),
    "avvp.datasets": (
        _set("avvp.datasets", ["synth_lpp"]),
        f"config: avvp.datasets lists 'synth_lpp', which is not defined under "
        f"datasets {DEFINED} 'synth_llp'?",
    ),
    "extract.stores": (
        _rename("extract.stores", "synth_llp", "synth_lpp"),
        f"config: extract.stores has the key 'synth_lpp', which is not defined "
        f"under datasets {DEFINED} 'synth_llp'?",
    ),
    "extract.overrides-dataset": (
        _rename("extract.overrides", "synth_ave", "synth_avee"),
        f"config: extract.overrides has the key 'synth_avee', which is not defined "
        f"under datasets {DEFINED} 'synth_ave'?",
    ),
    "extract.overrides-recipe": (
        _rename("extract.overrides.synth_ave", "vgg19_pool5", "vgg19_pool"),
        "config: extract.overrides.synth_ave has the key 'vgg19_pool', which is not a "
        "recipe of extract.stores.synth_ave (listed: vgg19_pool5, vggish); "
        "did you mean 'vgg19_pool5'?",
    ),
    "decode.overrides": (
        _set("decode.overrides", {"synth_avee": {"shards": 1}}),
        f"config: decode.overrides has the key 'synth_avee', which is not defined "
        f"under datasets {DEFINED} 'synth_ave'?",
    ),
    "unsupervised.overrides": (
        _rename("unsupervised.overrides", "synth_ave", "synth_avee"),
        f"config: unsupervised.overrides has the key 'synth_avee', which is not "
        f"defined under datasets {DEFINED} 'synth_ave'?",
    ),
}
TYPO_GROUP = {name: int(name == "extract.overrides-dataset") for name in TYPOS}


def _typos(group: int) -> Callable[[dict[str, Any]], None]:
    def edit(cfg: dict[str, Any]) -> None:
        for name, (typo, _) in TYPOS.items():
            if TYPO_GROUP[name] == group:
                typo(cfg)

    return edit


# Every Snakemake run of this module: name -> (edit of the default config or None, the
# arguments after `snakemake --cores 1`, "{wd}" standing for the workflow copy).
RUNS: dict[str, tuple[Callable[[dict[str, Any]], None] | None, tuple[str, ...]]] = {
    "all": (None, ("-n", "-p", "all")),
    "lint": (None, ("--lint", "json")),
    "run.not_a_key": (_set("run.not_a_key", 3), ("-n", "all")),
    "run.device": (_set("run.device", "tpu"), ("-n", "all")),
    "typos0": (_typos(0), ("-n", "all")),
    "typos1": (_typos(1), ("-n", "all")),
    **{
        f"{key}.weigths": (_set(f"{key}.weigths", "random"), ("-n", "all"))
        for key in ("extract.recipes.vggish", "extract.overrides.synth_ave.vggish")
    },
    "decode.shards": (_set("decode.shards", "zero"), ("-n", "all")),
    "decode.shard": (_set("decode.shard", 1), ("-n", "all")),
    "benchmark": (None, ("-n", "benchmark")),
    "benchmark-inner": (
        None,
        (
            "-n",
            "all",
            "--directory",
            "results/benchmark",
            "--snakefile",
            "{wd}/Snakefile",
            "--configfile",
            "{wd}/config/config.yaml",
            "{wd}/config/benchmark.yaml",
        ),
    ),
}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> DryRun:
    """The result of a run of RUNS by name.  The first call starts all of them together,
    each in its own copy of the workflow importing this checkout's avpipe: a Snakemake
    start keeps one core busy for seconds, so on 2 cores the 13 take the time of ~6."""
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def get(name: str) -> subprocess.CompletedProcess[str]:
        if not results:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            runs = []
            for run, (edit, args) in RUNS.items():
                wd = copy_workflow(tmp_path_factory.mktemp(run))
                if edit is not None:
                    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
                    edit(cfg)
                    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg))
                runs.append((wd, env, ("--cores", "1", *(a.format(wd=wd) for a in args))))
            results.update(zip(RUNS, snakemake_at_once(*runs), strict=True))
        return results[name]

    return get


@pytest.mark.parametrize("name", TYPOS)
def test_undefined_dataset_or_recipe_is_named(dry_run: DryRun, name: str) -> None:
    out = config_error(dry_run, f"typos{TYPO_GROUP[name]}")
    assert TYPOS[name][1] in out.splitlines(), out


# A recipe option typo used to surface only when the extract job ran.
@pytest.mark.parametrize("key", ["extract.recipes.vggish", "extract.overrides.synth_ave.vggish"])
def test_recipe_option_typo_is_named_when_the_dag_is_built(dry_run: DryRun, key: str) -> None:
    out = config_error(dry_run, f"{key}.weigths")
    lines = [line for line in out.splitlines() if line.startswith("config: ")]
    assert len(lines) == 1, out
    assert lines[0].startswith(f"config: {key}: extractor 'vggish': unknown option(s) ['weigths']")
    assert lines[0].endswith("did you mean 'weights'?")


def test_schema_error_is_short(dry_run: DryRun) -> None:
    out = config_error(dry_run, "decode.shards")
    assert len(out.strip().splitlines()) < 8, out  # was ~16 here, 150-600 for larger sections
    assert (
        "config: decode.shards = 'zero' is not allowed; expected type integer "
        "(workflow/schemas/decode.schema.yaml)" in out.splitlines()
    ), out


def test_unknown_key_lists_the_allowed_ones(dry_run: DryRun) -> None:
    out = config_error(dry_run, "decode.shard")
    assert (
        "config: decode has the unknown key 'shard' (allowed: on_error, overrides, shards, "
        "truncation_tolerance_s); did you mean 'shards'? (workflow/schemas/decode.schema.yaml)"
        in out.splitlines()
    ), out


def test_the_default_config_has_no_problems() -> None:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert dataset_problems(cfg) == []
    assert recipe_problems(cfg["extract"]) == []
    assert avvp_problems(cfg["avvp"]) == [] and cpsp_problems(cfg["cpsp"]) == []
    assert released_problems(cfg) == []


CHECKS_IMPORT = """
import sys, yaml
from avpipe import workflow_checks as w
cfg = yaml.safe_load(open("config/config.yaml"))
w.dataset_problems(cfg), w.recipe_problems(cfg["extract"]), w.released_problems(cfg)
print(sorted(m for m in ("torch", "torchvision", "h5py", "zarr", "av") if m in sys.modules))
"""


def test_the_config_checks_import_no_heavy_module() -> None:
    """checks.smk runs these in every Snakemake start (each dry run, each --lint): with
    torch, h5py, zarr or PyAV imported they cost ~3 s of CPU per start."""
    r = subprocess.run(
        [sys.executable, "-c", CHECKS_IMPORT],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_avvp_variant_and_cpsp_experiment_override_names_are_checked() -> None:
    from avpipe.methods.registry import of_stage

    # the schema's list of what a variant may train is the registry's AVVP methods
    schema = yaml.safe_load((REPO / "workflow/schemas/avvp.schema.yaml").read_text())
    variant = schema["properties"]["variants"]["additionalProperties"]["properties"]
    assert set(variant["method"]["enum"]) == set(of_stage("avvp"))
    avvp = {
        "methods": ["han", "coleaf_cmpea"],
        "variants": {"coleaf_cmpae": {"method": "coleaf"}},
        "overrides": {"synth_llp": {"data": {}, "coleaf_cmpae": {}, "hna": {}}},
    }
    problems = avvp_problems(avvp)
    assert len(problems) == 2
    assert problems[0].startswith("config: avvp.methods lists 'coleaf_cmpea', which is neither")
    assert problems[0].endswith("did you mean 'coleaf_cmpae'?")
    assert problems[1].startswith("config: avvp.overrides.synth_llp has the key 'hna'")
    cpsp = {
        "experiments": {"psp_original": {}},
        "overrides": {"synth_ave": {"experiments": {"psp_orignal": {}}}},
    }
    (problem,) = cpsp_problems(cpsp)
    assert "cpsp.overrides.synth_ave.experiments has the key 'psp_orignal'" in problem
    assert problem.endswith("did you mean 'psp_original'?")


def test_unknown_recipe_is_named() -> None:
    problems = recipe_problems({"recipes": {"vggsih": {}}})
    assert len(problems) == 1
    assert problems[0].startswith("config: extract.recipes has the key 'vggsih', which is not")
    assert problems[0].endswith("did you mean 'vggish'?")


def test_a_family_section_is_checked_against_its_dataclass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A method family on the generic train stage has no schema: its section, resolved for
    each dataset, must build its config dataclass."""
    from avpipe.methods import registry

    entry = registry.Method(
        family="toy",
        stage="train",
        config="avpipe.report.config:TSNEConfig",  # any dataclass with defaults
        trainer="x:y",
        predict="x:y",
        task="ave",
        code=(),
    )
    monkeypatch.setitem(registry.METHODS, "toy", entry)
    cfg = {
        "datasets": {"synth_ave": {}},
        "toy": {
            "datasets": ["synth_ave", "synth_avee"],
            "max_points": 10,
            "overrides": {"synth_ave": {"perplexity": "high"}},
        },
    }
    assert family_problems(cfg) == [
        "config: toy.datasets lists 'synth_avee', which is not defined under datasets "
        "(defined: synth_ave); did you mean 'synth_ave'?",
        "config: toy.perplexity: expected a number, got 'high' (dataset synth_ave)",
    ]


def test_did_you_mean() -> None:
    assert did_you_mean("synth_avee", ["synth_llp", "synth_ave"]) == "; did you mean 'synth_ave'?"
    assert did_you_mean("zzz", ["synth_ave"]) == ""


def test_released_feature_problems_are_named() -> None:
    cfg = {
        "datasets": {
            "ave": {
                "format": "ave",
                "features": {
                    "vggish": {"released": "a.h5", "format": "ave_h5"},
                    "vgg19_pool": {"released": "v.h5", "format": "ave_h5"},
                    "resnet152_llp": {"released": "feats/res152", "format": "llp_npy"},
                },
            }
        },
        "extract": {"stores": {"ave": ["vggish"]}},
    }
    assert released_problems(cfg) == [
        "config: datasets.ave.features.vggish is released, and extract.stores.ave also "
        "lists 'vggish': remove one of them",
        "config: datasets.ave.features.vgg19_pool: the ave_h5 release has no 'vgg19_pool' "
        "features (it has: vgg19_pool5, vggish); did you mean 'vgg19_pool5'?",
        "config: datasets.ave.features.resnet152_llp.format is 'llp_npy', but dataset 'ave' "
        "has format 'ave', whose released format is ave_h5",
    ]


def test_benchmark_study_plans_its_seeds_in_its_own_directory(dry_run: DryRun) -> None:
    from workflow_helpers import job_counts

    r = dry_run("benchmark")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "--directory results/benchmark" in r.stdout and "config/benchmark.yaml" in r.stdout
    # the nested run: the default workflow with the overlay, every training stage x its seeds
    inner = dry_run("benchmark-inner")
    assert inner.returncode == 0, inner.stdout + inner.stderr
    jobs = job_counts(inner.stdout)
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    bench = yaml.safe_load((REPO / "config/benchmark.yaml").read_text())
    seeds = len(bench["run"]["seeds"])
    assert seeds >= 5  # the floor for the benchmark's intervals
    n_cpsp = len(cfg["cpsp"]["experiments"] | bench["cpsp"].get("experiments", {}))
    n_avvp = len(cfg["avvp"]["methods"])
    clcl_seeds = len(bench["unsupervised"].get("seeds") or bench["run"]["seeds"])
    assert clcl_seeds >= seeds  # CLCL's wider seed-to-seed spread gets more seeds
    assert (jobs["pretrain"], jobs["em"]) == (clcl_seeds, 3 * clcl_seeds)
    assert (jobs["cpsp"], jobs["avvp"]) == (seeds * n_cpsp, seeds * n_avvp)
    assert 'preset":"benchmark' in inner.stdout
