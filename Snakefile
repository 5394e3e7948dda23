# avpipe: raw videos -> features -> unsupervised / supervised / weakly supervised
# audio-visual event localization -> paper-style tables.
#
#   snakemake --cores 8 all                       # workstation (profiles/default is loaded automatically)
#   snakemake --profile profiles/slurm all        # the same DAG on a SLURM cluster
#   snakemake --configfile config/reproduce/ave_cpsp.yaml --cores 8 all   # a paper's table
#   snakemake --cores 2 benchmark                 # the benchmark study (config/benchmark.yaml)
#
# This file only loads and validates the config and includes the stage rule files;
# every computation lives in the avpipe package (`avpipe <stage> ...`).

from snakemake.utils import min_version

min_version("9.0")


# A --configfile replaces the default instead of merging into it: config/reproduce/*.yaml
# are complete studies (Snakemake would otherwise keep the synthetic datasets).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


# Schema validation (defaults filled in) and cross-reference checks of the config.
include: "workflow/rules/checks.smk"


report: "workflow/report/workflow.rst"


include: "workflow/rules/settings.smk"
include: "workflow/rules/common.smk"
include: "workflow/rules/functions.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/selflabel.smk"
include: "workflow/rules/em.smk"
include: "workflow/rules/cpsp.smk"
include: "workflow/rules/avvp.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/localize.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/benchmark.smk"


rule all:
    default_target: True
    input:
        all_targets(),
