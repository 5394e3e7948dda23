"""Run the real workflow in a scratch copy and read what Snakemake plans.

``WorkflowCopy`` copies Snakefile, workflow/, config/, profiles/ and the avpipe package
into a folder and runs ``snakemake`` there with ``PYTHONPATH`` on that copy, so that
editing a source file in the copy changes the ``code(...)`` hashes the rules carry
(workflow/rules/common.smk) without touching the repository.

Stages whose rules have not landed yet are replaced by their outputs (``seed_upstream``):
a toy dataset's manifest and feature stores written where the manifest and extract rules
would put them, so that the unsupervised chain, evaluation and report run for real.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from avpipe.workflow_checks import DATASET_KEYS, DATASET_LISTS

REPO = Path(__file__).resolve().parents[1]
NOTHING_TO_DO = "Nothing to be done"
TOY = "toy"

# A few seconds per stage on 2 CPU cores.
TOY_UNSUPERVISED = {
    "pretrain": {
        "epochs": 3,
        "batch_size": 16,
        "encoder": {"d_model": 16, "heads": 4},
        "log_every": 1000,
    },
    "selflabel": {"hidden": 16, "top_k": 6, "epochs": 4, "batch_size": 16, "log_every": 1000},
    "em": {"rounds": 2, "epochs": 3, "batch_size": 16, "annotator_epochs": 3, "log_every": 1000},
}

TOY_CPSP_EXPERIMENT = "psp_weak"
TOY_CPSP = {
    "data": {"standardize": True, "num_threads": 1},
    "model": {
        "audio_hidden": 16,
        "embed": 16,
        "attention_hidden": 16,
        "visual_hidden": 16,
        "lstm_hidden": 8,
    },
    "train": {"epochs": 2, "batch_size": 8, "milestones": [10]},
}


def copy_workflow(dst: Path) -> Path:
    """Snakefile, workflow/, config/ and profiles/ copied into ``dst`` (the package is
    not: run there with ``PYTHONPATH`` on the repository)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "config", "profiles"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name)
        else:
            shutil.copy2(src, dst / name)
    return dst


def rule_names(root: Path = REPO) -> set[str]:
    """Rules defined in workflow/rules/*.smk (``rule NAME:`` / ``checkpoint NAME:``)."""
    pat = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
    return {m for f in (root / "workflow/rules").glob("*.smk") for m in pat.findall(f.read_text())}


def job_counts(output: str) -> Counter[str]:
    """{rule: jobs} from the "Job stats" table of ``snakemake -n`` (without all/total)."""
    counts: Counter[str] = Counter()
    if "Job stats:" not in output:
        return counts
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] not in ("all", "total"):
            counts[parts[0]] = int(parts[1])
    return counts


class WorkflowCopy:
    def __init__(self, wd: Path, of: WorkflowCopy | None = None):
        """A fresh copy of the repository's workflow in ``wd``, or with ``of``, a copy of
        that folder as it stands: results and Snakemake's records included, times kept."""
        self.wd = wd
        if of is not None:
            shutil.copytree(of.wd, wd, symlinks=True, dirs_exist_ok=True)
        else:
            wd.mkdir(parents=True, exist_ok=True)
            for name in ("Snakefile", "workflow", "config", "profiles", "avpipe"):
                src, dst = REPO / name, wd / name
                if src.is_dir():
                    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(src, dst)
        self.env = {**os.environ, "PYTHONPATH": str(wd), "OMP_NUM_THREADS": "1"}

    # -- config and sources ----------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.wd / "config/config.yaml"

    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_path.read_text())

    def write_config(self, cfg: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def edit_source(self, rel: str, line: str = "# edited by a rerun test") -> None:
        """Append a line to avpipe/<rel> of the copy (a code change that runs the same)."""
        path = self.wd / "avpipe" / rel
        path.write_text(path.read_text() + f"\n{line}\n")

    # -- snakemake ---------------------------------------------------------------------
    def snakemake(
        self, *args: str, timeout: int = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "snakemake", *args],
            cwd=self.wd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"snakemake {' '.join(args)} failed ({r.returncode}):\n"
                f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
            )
        return r

    def snakemake_at_once(
        self, *runs: tuple[str, ...], timeout: int = 600
    ) -> list[subprocess.CompletedProcess[str]]:
        return snakemake_at_once(*((self.wd, self.env, a) for a in runs), timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """``snakemake ARGS`` in the background, output to .snakemake/background.log."""
        (self.wd / ".snakemake").mkdir(exist_ok=True)
        with (self.wd / ".snakemake/background.log").open("wb") as fh:
            return subprocess.Popen(
                [sys.executable, "-m", "snakemake", *args],
                cwd=self.wd,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )

    def run(
        self, *targets: str, cores: int = 2, extra: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return self.snakemake("--cores", str(cores), *extra, *(targets or ("all",)))

    def planned(self, *targets: str) -> Counter[str]:
        """Jobs a dry run would execute now, per rule."""
        return planned_by(self.snakemake("-n", "--cores", "1", *(targets or ("all",))))


def planned_by(dry_run: subprocess.CompletedProcess[str]) -> Counter[str]:
    """Jobs per rule that a dry run's output plans (an error when it shows none)."""
    out = dry_run.stdout + dry_run.stderr
    counts = job_counts(out)
    if not counts and NOTHING_TO_DO not in out:
        raise AssertionError(f"cannot read the dry run:\n{out[-3000:]}")
    return counts


def snakemake_at_once(
    *runs: tuple[Path, dict[str, str], tuple[str, ...]], timeout: int = 600
) -> list[subprocess.CompletedProcess[str]]:
    """``snakemake ARGS`` in ``wd`` with environment ``env`` for each ``(wd, env, ARGS)``
    of ``runs``, all started together (dry runs: they take no lock), results in order.
    One Snakemake start keeps one core busy for a few seconds, so on a 2-core box two dry
    runs take the time of one."""
    with contextlib.ExitStack() as stack:
        procs = []
        for wd, env, args in runs:
            out = stack.enter_context(tempfile.TemporaryFile("w+"))
            err = stack.enter_context(tempfile.TemporaryFile("w+"))
            cmd = [sys.executable, "-m", "snakemake", *args]
            proc = subprocess.Popen(cmd, cwd=wd, env=env, stdout=out, stderr=err)
            stack.callback(proc.kill)  # on a timeout; a no-op once it has exited
            procs.append((proc, out, err))
        results = []
        for proc, out, err in procs:
            proc.wait(timeout=timeout)
            out.seek(0)
            err.seek(0)
            results.append(
                subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())
            )
    return results


def drop_undefined_datasets(cfg: dict[str, Any]) -> dict[str, Any]:
    """Remove every method list entry, store list and override of a dataset that is not
    under ``cfg["datasets"]`` (the workflow refuses them as typos); ``cfg`` is edited."""
    defined = set(cfg["datasets"])
    for dotted in (*DATASET_LISTS, *DATASET_KEYS):
        section, key = dotted.split(".")
        value = cfg.get(section, {}).get(key)
        if isinstance(value, list):
            cfg[section][key] = [d for d in value if d in defined]
        elif isinstance(value, dict):
            cfg[section][key] = {d: v for d, v in value.items() if d in defined}
    return cfg


def seed_upstream(wf: WorkflowCopy, seeds: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """Config for a fast study of the toy dataset; writes the outputs of missing stages.

    The dataset ``toy`` (tests/clcl_fixtures.py: 4 classes, 24 train + 8 test videos)
    replaces the synthetic ones; its manifest and the two feature stores the
    unsupervised method reads are written in place of the manifest/extract outputs
    (``generated: false``; ``toy`` has no entry under extract.stores, so its stores are
    inputs from outside the workflow, as released features would be).
    """
    from clcl_fixtures import make_dataset

    src = wf.wd / "seed"
    manifest, v, a = make_dataset(src, n_train=24, n_test=8)
    # every 4th training video becomes validation (PSP/CPSP select their epoch on val)
    samples = [
        dataclasses.replace(x, split="val") if x.split == "train" and i % 4 == 3 else x
        for i, x in enumerate(manifest.samples)
    ]
    man = wf.wd / f"results/manifest/{TOY}"
    man.parent.mkdir(parents=True)
    manifest.replace(samples=samples).write(man)
    for name in ("coverage.tsv", "problems.tsv"):  # the rest of the manifest rule's outputs
        (man / name).write_text("split\n")
    ext = wf.wd / f"results/extract/{TOY}"
    ext.mkdir(parents=True)
    shutil.move(v, ext / "vgg19_pool5.zarr")
    shutil.move(a, ext / "vggish.zarr")
    shutil.rmtree(src)
    # the stores must be newer than the manifest, or the extract rules would remake them
    later = time.time() + 1
    for path in [ext, *ext.rglob("*")]:
        os.utime(path, (later, later))
    cfg = wf.config()
    cfg["run"] = {**cfg["run"], "seeds": list(seeds), "device": "cpu"}
    cfg["datasets"] = {TOY: {"format": "ave", "root": "data/toy"}}
    un = cfg["unsupervised"]
    un["datasets"] = [TOY]
    un["data"] = {**un["data"], "num_threads": 1}
    un["overrides"] = {TOY: TOY_UNSUPERVISED}
    if "datasets" in cfg.get("cpsp", {}):  # one small PSP run on the toy AVE-format data
        cp = cfg["cpsp"]
        cp["datasets"] = [TOY]
        cp["experiments"] = {k: v for k, v in cp["experiments"].items() if k == TOY_CPSP_EXPERIMENT}
        cp["overrides"] = {TOY: TOY_CPSP}
    if "datasets" in cfg.get("avvp", {}):  # needs LLP-format stores, which the toy has not
        cfg["avvp"]["datasets"] = []
    cfg["report"] = {**cfg.get("report", {}), "dpi": 50, "tsne": {"max_points": 200}}
    wf.write_config(drop_undefined_datasets(cfg))
    return cfg
