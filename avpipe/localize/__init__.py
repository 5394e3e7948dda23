"""``avpipe localize``: a trained model's event timelines on new videos.

:mod:`~avpipe.localize.inputs` records, beside each trained model, how its inputs were
made (recipes, options, segment grid, standardisation); :mod:`~avpipe.localize.models`
turns new videos' features into per-segment decisions of each method family;
:mod:`~avpipe.localize.timeline` writes them as events (TSV, JSON, PNG).
"""
