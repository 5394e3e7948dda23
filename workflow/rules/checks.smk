# Config checks when the DAG is built, before any rule is defined: the schemas
# (workflow/schemas/, which also fill in the defaults), then what a schema cannot see:
# every dataset a method, store or override names is defined under `datasets`, and
# every recipe's options are valid (avpipe/workflow_checks.py). A failure is one line
# per problem, naming the key and the bad value, instead of a smaller DAG or a late job.

import os

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from avpipe.config import ConfigError
from avpipe.methods.registry import METHODS, generic
from avpipe.workflow_checks import (
    avvp_problems,
    cpsp_problems,
    dataset_problems,
    fill_section_defaults,
    family_problems,
    find_validation_error,
    recipe_problems,
    released_problems,
    schema_error_message,
)

CONFIG_SCHEMA = os.path.relpath(
    os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
)

# Sections of method families on the generic `train` stage have no schema file: their
# config dataclass is checked instead (family_problems).
FAMILY_SECTIONS = {METHODS[name].family for name in generic()}
try:
    validate(
        {k: v for k, v in config.items() if k not in FAMILY_SECTIONS},
        os.path.abspath(CONFIG_SCHEMA),
    )
except WorkflowError as e:
    schema_error = find_validation_error(e)
    if schema_error is None:
        raise
    with open(CONFIG_SCHEMA) as fh:
        top_schema = yaml.safe_load(fh)
    # from None: Snakemake's own message repeats the whole sub-schema
    raise ConfigError(
        schema_error_message(schema_error, top_schema, CONFIG_SCHEMA)
    ) from None
fill_section_defaults(config, os.path.abspath(CONFIG_SCHEMA))

CONFIG_PROBLEMS = (
    dataset_problems(config)
    + recipe_problems(config["extract"])
    + family_problems(config)
    + avvp_problems(config["avvp"])
    + cpsp_problems(config["cpsp"])
    + released_problems(config)
)
if CONFIG_PROBLEMS:
    raise ConfigError("\n".join(CONFIG_PROBLEMS))
