"""Config checks the workflow runs when it builds the DAG (workflow/rules/checks.smk).

Each function takes the (schema-validated) config, or a schema error, and returns
one-line messages of the form ``config: <key> ...`` that name the key, the bad value and
what is allowed, so that a typo stops the run before any job instead of silently
dropping a study or failing hours later. Pure functions: no Snakemake, no files.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from avpipe.config import ConfigError

# Config lists and keys that name a dataset (a key of `datasets`).
DATASET_LISTS = ("unsupervised.datasets", "cpsp.datasets", "avvp.datasets")
DATASET_KEYS = (
    "extract.stores",
    "extract.overrides",
    "decode.overrides",
    "unsupervised.overrides",
    "cpsp.overrides",
    "avvp.overrides",
)


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(value), sorted(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def dataset_problems(config: Mapping[str, Any]) -> list[str]:
    """Every method list, store list and override that names an undefined dataset.

    Also: a recipe of ``extract.stores.<dataset>`` with no entry under
    ``extract.recipes``, and a recipe under ``extract.overrides.<dataset>`` that is not
    one of that dataset's stores (its options would never be used).
    """
    defined = set(config.get("datasets") or {})

    def undefined(name: str) -> str:
        return (
            f"which is not defined under datasets (defined: {_names(defined)})"
            f"{did_you_mean(name, defined)}"
        )

    out = [
        f"config: {key} lists {name!r}, {undefined(name)}"
        for key in DATASET_LISTS
        for name in _get(config, key) or []
        if name not in defined
    ]
    out += [
        f"config: {key} has the key {name!r}, {undefined(name)}"
        for key in DATASET_KEYS
        for name in _get(config, key) or {}
        if name not in defined
    ]
    ext = config.get("extract") or {}
    recipes, stores = ext.get("recipes") or {}, ext.get("stores") or {}
    for ds, listed in stores.items():
        out += [
            f"config: extract.stores.{ds} lists {r!r}, which has no entry under "
            f"extract.recipes (defined: {_names(recipes)}){did_you_mean(r, recipes)}"
            for r in listed
            if r not in recipes
        ]
    for ds, over in (ext.get("overrides") or {}).items():
        if ds not in defined:
            continue
        listed = stores.get(ds) or []
        out += [
            f"config: extract.overrides.{ds} has the key {r!r}, which is not a recipe of "
            f"extract.stores.{ds} (listed: {_names(listed)}){did_you_mean(r, listed)}"
            for r in over
            if r not in listed
        ]
    return out


def family_problems(config: Mapping[str, Any]) -> list[str]:
    """The config sections of method families on the generic ``train`` stage.

    Such a section has no JSON schema: its source of truth is the method's config
    dataclass, so each dataset's resolved section is built with ``from_dict`` (unknown
    keys and bad values named) and its ``datasets`` must be defined.
    """
    from avpipe.config import from_dict, resolve
    from avpipe.methods import registry

    defined = set(config.get("datasets") or {})
    out = []
    for name in registry.generic():
        family = registry.get(name).family
        section = config.get(family)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            out.append(f"config: {family} must be a mapping, got {section!r}")
            continue
        listed = section.get("datasets") or []
        out += [
            f"config: {family}.datasets lists {ds!r}, which is not defined under datasets "
            f"(defined: {_names(defined)}){did_you_mean(ds, defined)}"
            for ds in listed
            if ds not in defined
        ]
        out += [
            f"config: {family}.overrides has the key {ds!r}, which is not defined under "
            f"datasets (defined: {_names(defined)}){did_you_mean(ds, defined)}"
            for ds in section.get("overrides") or {}
            if ds not in defined
        ]
        cls = registry.load(registry.get(name).config)
        for ds in [None, *(d for d in listed if d in defined)]:
            try:
                from_dict(cls, resolve(family, ds, config=config), where=family)
            except ConfigError as e:
                out.append(f"config: {e}" + ("" if ds is None else f" (dataset {ds})"))
    return list(dict.fromkeys(out))


def avvp_problems(avvp: Mapping[str, Any]) -> list[str]:
    """Names in ``avvp.methods`` and ``avvp.overrides.<dataset>`` that are neither a method
    (the registry's AVVP methods) nor a variant under ``avvp.variants`` (nor ``data``)."""
    from avpipe.methods import registry

    variants = set(avvp.get("variants") or {})
    known = set(registry.of_stage("avvp")) | variants
    out = [
        f"config: avvp.methods lists {name!r}, which is neither a method nor a variant "
        f"under avvp.variants (known: {_names(known)}){did_you_mean(name, known)}"
        for name in avvp.get("methods") or []
        if name not in known
    ]
    for ds, over in (avvp.get("overrides") or {}).items():
        out += [
            f"config: avvp.overrides.{ds} has the key {key!r}, which is not data, a method or "
            f"a variant (known: {_names(known | {'data'})}){did_you_mean(key, known | {'data'})}"
            for key in over or {}
            if key not in known | {"data"}
        ]
    return out


def cpsp_problems(cpsp: Mapping[str, Any]) -> list[str]:
    """Experiments under ``cpsp.overrides.<dataset>.experiments`` that are not defined
    under ``cpsp.experiments`` (their changes would never be used)."""
    defined = set(cpsp.get("experiments") or {})
    return [
        f"config: cpsp.overrides.{ds}.experiments has the key {name!r}, which is not an "
        f"experiment under cpsp.experiments (defined: {_names(defined)})"
        f"{did_you_mean(name, defined)}"
        for ds, over in (cpsp.get("overrides") or {}).items()
        for name in (over or {}).get("experiments") or {}
        if name not in defined
    ]


# Dataset format -> the released feature format of that dataset (avpipe/io/released.py).
RELEASED_FORMATS = {"ave": "ave_h5", "llp": "llp_npy", "vggsound_avel": "vggsound_avel_zip"}


def released_problems(config: Mapping[str, Any]) -> list[str]:
    """Released-feature entries (``datasets.<ds>.features``) that cannot be imported.

    The release format must be the dataset's, the recipe one the release has, and the
    recipe not also listed under ``extract.stores.<ds>`` (one store, two producers).
    """
    from avpipe.io.released import RELEASE_SHAPES

    stores = (config.get("extract") or {}).get("stores") or {}
    out = []
    for ds, entry in (config.get("datasets") or {}).items():
        for recipe, rel in (entry.get("features") or {}).items():
            key = f"config: datasets.{ds}.features.{recipe}"
            want = RELEASED_FORMATS.get(entry.get("format"))
            if rel["format"] != want:
                out.append(
                    f"{key}.format is {rel['format']!r}, but dataset {ds!r} has format "
                    f"{entry.get('format')!r}, whose released format is {want or 'none'}"
                )
                continue
            if (rel["format"], recipe) not in RELEASE_SHAPES:
                have = [r for f, r in RELEASE_SHAPES if f == rel["format"]]
                out.append(
                    f"{key}: the {rel['format']} release has no {recipe!r} features "
                    f"(it has: {_names(have)}){did_you_mean(recipe, have)}"
                )
            if recipe in (stores.get(ds) or []):
                out.append(
                    f"{key} is released, and extract.stores.{ds} also lists {recipe!r}: "
                    "remove one of them"
                )
    return out


def recipe_problems(extract: Mapping[str, Any]) -> list[str]:
    """Recipes and recipe options of ``config["extract"]`` that the registry rejects.

    Checks each ``extract.recipes.<recipe>`` and each ``extract.overrides.<dataset>.<recipe>``
    merged over it, with :func:`avpipe.features.registry.resolve_options` (builds no model).
    """
    from avpipe.features import registry

    known = registry.list_recipes()
    recipes = extract.get("recipes") or {}
    out, valid = [], set()
    for name, options in recipes.items():
        if name not in known:
            out.append(
                f"config: extract.recipes has the key {name!r}, which is not a known recipe "
                f"(known: {_names(known)}){did_you_mean(name, known)}"
            )
            continue
        problem = _option_problem(f"extract.recipes.{name}", name, options or {})
        if problem:
            out.append(problem)
        else:
            valid.add(name)
    for ds, over in (extract.get("overrides") or {}).items():
        for name, options in over.items():
            if name in valid:
                merged = {**(recipes[name] or {}), **(options or {})}
                problem = _option_problem(f"extract.overrides.{ds}.{name}", name, merged)
                if problem:
                    out.append(problem)
    return out


def _option_problem(key: str, recipe: str, options: Mapping[str, Any]) -> str | None:
    from avpipe.features import registry

    try:
        registry.resolve_options(recipe, dict(options))
    except ConfigError as e:
        allowed = registry.get_recipe(recipe).options
        unknown = sorted(set(options) - set(allowed))
        hint = did_you_mean(unknown[0], allowed) if unknown else ""
        return f"config: {key}: {e}{hint}"
    return None


def find_validation_error(exc: BaseException) -> Any | None:
    """The jsonschema ValidationError behind ``exc`` (Snakemake wraps it), or None."""
    import jsonschema

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, jsonschema.ValidationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def schema_file_of(path: list[Any], schema: Mapping[str, Any], schema_file: str) -> str:
    """The section schema that ``$ref``-s from ``schema_file`` for the key at ``path``."""
    if path:
        ref = (schema.get("properties", {}).get(path[0]) or {}).get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return os.path.normpath(os.path.join(os.path.dirname(schema_file), ref))
    return schema_file


_BOUNDS = {
    "minimum": "a value >= {}",
    "maximum": "a value <= {}",
    "exclusiveMinimum": "a value > {}",
    "exclusiveMaximum": "a value < {}",
    "pattern": "a string matching {}",
    "minItems": "at least {} items",
    "maxItems": "at most {} items",
    "minLength": "at least {} characters",
    "uniqueItems": "no repeated items",
    "const": "{}",
}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def schema_error_message(error: Any, schema: Mapping[str, Any], schema_file: str) -> str:
    """One line for a jsonschema ``ValidationError`` of the config against ``schema``.

    Names the key path, the bad value, what is allowed and the section's schema file.
    """
    path = list(error.absolute_path)
    key = ".".join(str(p) for p in path)
    where = f"({schema_file_of(path, schema, schema_file)})"
    value = error.instance
    rule, expected = error.validator, error.validator_value
    if rule == "additionalProperties" and isinstance(value, Mapping):
        allowed = list(error.schema.get("properties") or {})
        extra = sorted(set(value) - set(allowed), key=str)
        owner = key or "the top level"
        return (
            f"config: {owner} has the unknown key {_short(extra[0])} "
            f"(allowed: {_names(allowed)}){did_you_mean(extra[0], allowed)} {where}"
        )
    if rule == "required":
        missing = [k for k in expected if not isinstance(value, Mapping) or k not in value]
        return f"config: {key or 'the top level'} lacks the key {_short(missing[0])} {where}"
    if rule == "type":
        allowed = " or ".join(expected) if isinstance(expected, list) else expected
        detail = f"expected type {allowed}"
    elif rule == "enum":
        detail = f"expected one of {', '.join(repr(v) for v in expected)}"
    elif rule in _BOUNDS:
        detail = "expected " + _BOUNDS[rule].format(_short(expected))
    else:
        detail = error.message
    return f"config: {key} = {_short(value)} is not allowed; {detail} {where}"


def fill_section_defaults(config: dict[str, Any], schema_file: str) -> None:
    """Fill each section's missing keys with its schema's ``default`` (one level deep).

    Snakemake's ``validate`` does not follow a section's ``$ref`` into its own schema file
    to fill defaults, so a config that leaves out a key (``--configfile`` replacing the
    default config, e.g. ``config/reproduce/*.yaml``) would reach the rules without it.
    The schemas' defaults equal the dataclasses' (tests/test_config_sources.py).
    """
    import yaml

    with open(schema_file) as fh:
        top = yaml.safe_load(fh)
    for section in top.get("properties", {}):
        section_file = schema_file_of([section], top, schema_file)
        if section_file == schema_file or not isinstance(config.get(section), dict):
            continue  # no schema file of its own, or the section is absent
        with open(section_file) as fh:
            sub = yaml.safe_load(fh)
        for key, spec in sub.get("properties", {}).items():
            if isinstance(spec, dict) and "default" in spec and key not in config[section]:
                config[section][key] = copy.deepcopy(spec["default"])
