"""Feature extractors, looked up by name (see ``registry``)."""
