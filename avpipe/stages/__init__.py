"""One small CLI per workflow stage: parse -> typed config -> library call -> outputs."""
