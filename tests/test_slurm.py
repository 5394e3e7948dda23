"""The workflow through a real SLURM cluster with profiles/slurm, against a local run.

The cluster is either already running (``sinfo`` answers: e.g. started by
``bash tools/local-slurm.sh up``), or, when ``CI`` is true and we are root, started here
with tools/local-slurm.sh (Debian's slurm-wlm + munge, one node, partitions ``cpu`` and
``gpu``, one fake GPU) and stopped at the end by the pids of the daemons it started.
Otherwise the test is skipped.

A reduced study (the toy dataset, one seed, one EM round) covers every rule kind the
workflow has now: the GPU stages (pretrain, selflabel, em), evaluation and the report.
Asserted: each job went through ``sbatch`` (one SLURM log per job, and ``squeue`` lists
it under its rule with the partition and GRES of the profile), and every result file
equals the local run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from workflow_helpers import REPO, TOY, WorkflowCopy, seed_upstream

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SCRIPT = REPO / "tools/local-slurm.sh"
PROFILE = REPO / "profiles/slurm/config.v8+.yaml"


def _cluster_answers() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    r = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and bool(r.stdout.strip())


def _daemon_pids() -> list[tuple[str, int]]:
    r = subprocess.run(
        ["bash", str(SCRIPT), "pids"], capture_output=True, text=True, timeout=30, check=True
    )
    return [(name, int(pid)) for name, pid in (line.split() for line in r.stdout.splitlines())]


def _stop(name: str, pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(60):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    started: list[tuple[str, int]] = []
    if not _cluster_answers():
        if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
            pytest.skip(
                "no SLURM cluster answers (sinfo) and CI is not true: "
                "start one with `bash tools/local-slurm.sh up` (root) or set CI=true"
            )
        if os.geteuid() != 0:
            pytest.skip("starting the local SLURM cluster needs root")
        before = set(_daemon_pids())
        subprocess.run(["bash", str(SCRIPT), "install"], check=True, timeout=600)
        subprocess.run(["bash", str(SCRIPT), "start"], check=True, timeout=300)
        started = [p for p in _daemon_pids() if p not in before]
    yield
    for name, pid in reversed(started):  # slurmd, slurmctld, then munged
        _stop(name, pid)


def _study(wd: Path) -> WorkflowCopy:
    wf = WorkflowCopy(wd)
    cfg = seed_upstream(wf, (0,))
    cfg["unsupervised"]["overrides"][TOY]["em"]["rounds"] = 1
    wf.write_config(cfg)
    return wf


def _gpu_rules() -> set[str]:
    prof = yaml.safe_load(PROFILE.read_text())
    return {r for r, res in prof["set-resources"].items() if "gpu" in str(res.get("gres", ""))}


TIMING_COLUMNS = {"seconds", "time", "elapsed", "throughput"}


def _untimed(path: Path) -> list[list[str]]:
    """A TSV's rows without wall-clock columns (training histories record seconds per epoch)."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING_COLUMNS] if rows else []
    return [[r[i] for i in keep if i < len(r)] for r in rows]


def _compare(a: Path, b: Path) -> None:
    """Equal result files: TSV (but for timing columns) and Markdown text, metrics.json
    metrics, npz arrays; checkpoints, figures and summary.json (run time) are not compared."""
    if a.suffix == ".tsv":
        assert _untimed(a) == _untimed(b), a
    elif a.suffix in (".md", ".txt"):
        assert a.read_text() == b.read_text(), a
    elif a.name == "metrics.json":
        assert json.loads(a.read_text())["metrics"] == json.loads(b.read_text())["metrics"], a
    elif a.suffix == ".npz":
        with np.load(a) as x, np.load(b) as y:
            assert sorted(x.files) == sorted(y.files), a
            for k in x.files:
                if x[k].dtype.kind in "fc":
                    np.testing.assert_allclose(x[k], y[k], rtol=1e-6, atol=1e-6, err_msg=f"{a}:{k}")
                else:
                    np.testing.assert_array_equal(x[k], y[k], err_msg=f"{a}:{k}")


def test_study_through_slurm_equals_local_run(
    cluster: None, tmp_path: Path, record_property
) -> None:
    local, slurm = _study(tmp_path / "local"), _study(tmp_path / "slurm")
    planned = local.planned()
    assert {"pretrain", "selflabel", "em", "evaluate_unsupervised", "report"} <= set(planned)
    # the local reference runs meanwhile: the SLURM run mostly waits for job starts and polls
    ref = local.start("--cores", "1", "all")
    t0 = time.perf_counter()
    slurm.snakemake(
        "--profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "1", "all"
    )
    wall = time.perf_counter() - t0
    assert ref.wait(timeout=600) == 0, (local.wd / ".snakemake/background.log").read_text()[-3000:]
    record_property("slurm_wall_s", round(wall, 1))
    print(f"\nSLURM run of {sum(planned.values())} jobs: {wall:.0f} s")

    # every job went through sbatch: one SLURM log per job (logs/slurm/rule_<rule>/.../<id>.log)
    base = slurm.wd / "logs/slurm"
    logs = list(base.rglob("*.log"))
    assert Counter(p.relative_to(base).parts[0].removeprefix("rule_") for p in logs) == planned
    # ... and SLURM ran each in the profile's partition, with a GPU for the GPU rules
    ids = ",".join(p.stem for p in logs)
    q = subprocess.run(
        ["squeue", "--states=all", "-h", "-j", ids, "-o", "%i|%k|%P|%b|%T"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    jobs = [line.split("|") for line in q.splitlines()]
    assert len(jobs) == len(logs), q
    gpu = _gpu_rules()
    for _, comment, part, tres, state in jobs:
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        assert state == "COMPLETED", comment
        if rule in gpu:
            assert (part, tres) == ("gpu", "gres:gpu:1"), comment
        else:
            assert part == "cpu", comment

    # the same results as the local run
    files = sorted(
        p.relative_to(local.wd)
        for p in (local.wd / "results").rglob("*")
        if p.is_file() and ".zarr" not in p.as_posix()
    )
    other = sorted(
        p.relative_to(slurm.wd)
        for p in (slurm.wd / "results").rglob("*")
        if p.is_file() and ".zarr" not in p.as_posix()
    )
    assert files == other
    for rel in files:
        _compare(local.wd / rel, slurm.wd / rel)
    assert slurm.planned() == {}  # and a second run through SLURM has nothing to do
