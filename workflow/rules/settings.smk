# Workflow-wide directives: resource scopes and wildcard patterns.


# GPU is a per-machine limit (profiles/default sets gpu=1); on SLURM every GPU
# job gets its own GPU, so the resource must not be global.
resource_scopes:
    gpu="local",


wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    recipe=r"[A-Za-z0-9_\-]+",
    shard=r"\d+",
    experiment=r"[A-Za-z0-9_\-]+",
    method=r"[A-Za-z0-9_\-]+",
    round=r"\d+",
    seed=r"\d+",
