# Stage "report": paper-style tables and figures from every evaluation output.
# Its inputs are every metrics.json the config asks for (functions.smk report_metrics,
# from the config and the method registry; for the seeds of report.seeds, or all) and
# it writes results/report/{summary.{md,html,tsv},tables/,figures/<kind>/}.
# `snakemake --report report.html` gets the HTML tables (its viewer shows text/html
# inline; Markdown would only be a download) and the figures, with the captions in
# workflow/report/ and labels from the file names <stage>__<dataset>__<experiment>.
# Training curves of the stages before the evaluated one (CLCL's pretrain and
# selflabel) are inputs too (report_histories).


# The label of the report's entries, from the wildcards of the patterns below. One label:
# the report viewer turns a second label with two values into an on/off toggle, assuming
# every combination exists, and stops rendering when one does not (Snakemake 9.27).
REPORT_LABELS = {"experiment": "{stage} · {dataset} · {experiment}"}


rule report:
    input:
        metrics=report_metrics(),
        manifests=expand(
            "results/manifest/{dataset}/samples.tsv", dataset=report_datasets()
        ),
        histories=report_histories(),
    output:
        summary="results/report/summary.md",
        summary_html=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "Results summary (papers' layouts)"},
        ),
        summary_tsv="results/report/summary.tsv",
        comparisons="results/report/comparisons.tsv",
        tables=report(
            directory("results/report/tables"),
            patterns=["{stage}__{dataset}__{experiment}.html"],
            caption="../report/tables.rst",
            category="Tables",
            labels=REPORT_LABELS,
        ),
        figure_list="results/report/figures.txt",
        tsne=report(
            directory("results/report/figures/tsne"),
            patterns=["{stage}__{dataset}__{experiment}.png"],
            caption="../report/tsne.rst",
            labels=REPORT_LABELS,
            category="Figures",
            subcategory="t-SNE per EM round",
        ),
        em_rounds=report(
            directory("results/report/figures/em_rounds"),
            patterns=["{stage}__{dataset}__{experiment}.png"],
            caption="../report/em_rounds.rst",
            labels=REPORT_LABELS,
            category="Figures",
            subcategory="Purity and accuracy per EM round",
        ),
        training=report(
            directory("results/report/figures/training"),
            patterns=["{stage}__{dataset}__{experiment}.png"],
            caption="../report/training.rst",
            labels=REPORT_LABELS,
            category="Figures",
            subcategory="Training curves",
        ),
        timelines=report(
            directory("results/report/figures/timelines"),
            patterns=["{stage}__{dataset}__{experiment}.png"],
            caption="../report/timelines.rst",
            labels=REPORT_LABELS,
            category="Figures",
            subcategory="Event timelines",
        ),
        per_class=report(
            directory("results/report/figures/per_class"),
            patterns=["{stage}__{dataset}__{experiment}.png"],
            caption="../report/per_class.rst",
            labels=REPORT_LABELS,
            category="Figures",
            subcategory="Per-class scores",
        ),
    log:
        "logs/report/report.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=as_json(config["report"]),
        code=code("report", "stages/report"),
        metrics=lambda wildcards, input: " ".join(f"'{p}'" for p in input.metrics),
        histories=report_history_args,
    shell:
        "avpipe report --metrics {params.metrics} --history {params.histories} "
        "--manifest-root results/manifest --config-json {params.cfg:q} "
        "--out-dir results/report > {log} 2>&1"
