"""Feature extractors, looked up by name (see ``registry``).

``list_recipes()``, ``spec_for(recipe, options)`` (cheap, no model) and
``build(recipe, options)`` (imports the model code and loads weights).
"""

from avpipe.features.registry import build, describe, list_recipes, spec_for

__all__ = ["build", "describe", "list_recipes", "spec_for"]
