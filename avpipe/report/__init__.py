"""Paper-style tables and figures from the evaluation outputs (``avpipe report``).

* :mod:`~avpipe.report.config`     the ``report:`` config section as a frozen dataclass
* :mod:`~avpipe.report.collect`    metrics.json files -> runs; mean ± std over seeds
* :mod:`~avpipe.report.tables`     per-experiment tables and the cross-method summary
* :mod:`~avpipe.report.published`  the papers' own numbers, labelled "published"
* :mod:`~avpipe.report.figures`    t-SNE per EM round, purity/accuracy per round, training
  curves, event timelines, per-class scores (matplotlib, Agg backend)

Everything is read from files the evaluation and training stages already wrote; the
report never recomputes a metric.
"""
