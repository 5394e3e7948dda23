"""avpipe: audio-visual event localization from raw videos to paper tables.

The package never imports Snakemake; ``workflow/`` wires stage entry points
(``avpipe <stage> ...``) together.
"""

__version__ = "0.1.0"
