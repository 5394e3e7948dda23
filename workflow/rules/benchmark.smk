# Target "benchmark": the benchmark study (config/benchmark.yaml). The same workflow with
# that file laid over config/config.yaml, run by a nested Snakemake in its own working
# directory, results/benchmark/, so that its results/ and logs/ and the default study's
# never mix; the nested run reruns only what changed. Not part of `all`:
#   snakemake --cores 2 benchmark   ->  results/benchmark/results/report/summary.md

BENCHMARK_DIR = "results/benchmark"


rule benchmark:
    input:
        configs=["config/config.yaml", "config/benchmark.yaml"],
    output:
        f"{BENCHMARK_DIR}/results/report/summary.md",
    log:
        "logs/benchmark/benchmark.log",
    # the nested run's --cores; a local run caps it at its own --cores (so `--cores 2
    # benchmark` runs the nested study on 2), and --set-threads benchmark=N changes it
    threads: 8
    params:
        snakefile=os.path.abspath(workflow.main_snakefile),
        # <workdir>/results/report/summary.md -> <workdir>
        workdir=lambda wildcards, output: str(Path(output[0]).parents[2]),
        configs=lambda wildcards, input: " ".join(
            os.path.abspath(p) for p in input.configs
        ),
        code=code(""),
    # --max-jobs-per-timespan: with Snakemake's default, 100/1s, every pass of its scheduler
    # re-arms a 1-s timer and every finished job starts another such chain, so it wakes
    # more and more often, and each pass stats every ready job's inputs: over the study's
    # ~650 jobs that took 17 min of one core's time in 56 min. A 1-minute span wakes it 60
    # times less often; a process only exits when its last timer has fired (a 10-minute
    # span kept the finished study waiting for minutes), and 10000 jobs a minute never binds
    shell:
        "snakemake --snakefile {params.snakefile} --directory {params.workdir} "
        "--rerun-incomplete --configfile {params.configs} --cores {threads} "
        "--max-jobs-per-timespan 10000/1m all > {log} 2>&1"
