"""Typed, frozen stage configs built from the (schema-validated) YAML slices.

One resolver, :func:`resolve`, turns ``config/config.yaml`` into the slice one stage
job needs; the workflow (workflow/rules/functions.smk) and the command line
(``avpipe <stage> --config config/config.yaml --dataset <ds>``) both call it, so a
stage run by hand gets exactly what the rule passes as ``--config-json``.

Precedence, lowest first (one rule for every section)::

    1. the dataclass defaults            (absent keys; from_dict fills them)
    2. <section>.<part>                  (config.yaml's base settings)
    3. <section>.overrides.<dataset>     (dataset-level adjustments, e.g. the synthetic
                                          default's short schedules and small models)
    4. the experiment's own keys         (cpsp.experiments.<exp>.train / .data; an AVVP
                                          variant's changes, avvp.variants.<v>.changes)
    5. the dataset's changes to that one  (cpsp.overrides.<dataset>.experiments.<exp>,
       experiment or variant              avvp.overrides.<dataset>.<variant>)

Mappings merge key by key at every depth; a list or a scalar replaces the value below
it.  An experiment states what makes it that experiment (CPSP weak's milestones
[5, 20, 40]), so a dataset-wide override never silently replaces it; the override fills
in only what the experiment leaves open, and a dataset changes one experiment's own keys
only by naming that experiment (level 5).  ``--set KEY=VALUE`` edits the YAML itself
(KEY is the YAML path, e.g. ``cpsp.overrides.synth_ave.train.epochs=3``) before
resolving, so it acts at the level it names.

``from_dict`` turns a slice into the stage's frozen dataclass and rejects unknown keys
by name, so a config written for another version of avpipe fails loudly instead of
being half-applied.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value or key is wrong; the message names it."""


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where=where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            return tuple(
                _convert(a, v, f"{where}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        inner = args[0] if args else Any
        conv = [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(conv) if origin is tuple else conv
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        return Path(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise ConfigError."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    return cls(**kwargs)


def load_json_arg(text: str) -> dict[str, Any]:
    """Parse a ``--config-json`` argument: inline JSON or ``@path/to/file.json``."""
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--config-json is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"--config-json must be a JSON object, got {type(data).__name__}")
    return data


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain JSON-able dict (Paths as strings), for provenance."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --- resolving config.yaml into one job's slice ----------------------------------------


def merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` on top (new dicts): mappings merge, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_value(config: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set KEY=VALUE`` (KEY a dotted YAML path, VALUE parsed as YAML)."""
    import yaml

    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. cpsp.train.epochs=3")
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"--set {key}: {'.'.join(parts[: i + 1])} is {child!r}, not a mapping"
            )
        node = child
    node[parts[-1]] = yaml.safe_load(text)


def load_config(path: Path | str, sets: Iterable[str] = ()) -> dict[str, Any]:
    """config.yaml (or any file in its shape) with ``--set`` assignments applied."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read it ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"--config {path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of sections")
    for assignment in sets:
        set_value(data, assignment)
    return data


def _section(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"config: {name} must be a mapping, got {value!r}")
    return dict(value)


def _override(section: Mapping[str, Any], dataset: str | None) -> dict[str, Any]:
    if dataset is None:
        return {}
    return dict((section.get("overrides") or {}).get(dataset) or {})


def _layer(section: Mapping[str, Any], over: Mapping[str, Any], part: str) -> dict[str, Any]:
    """``<section>.<part>`` <- ``overrides.<dataset>.<part>``."""
    return merge(section.get(part) or {}, over.get(part) or {})


def _check_dataset(config: Mapping[str, Any], dataset: str | None) -> None:
    defined = config.get("datasets") or {}
    if dataset is not None and dataset not in defined:
        raise ConfigError(
            f"dataset {dataset!r} is not defined under datasets "
            f"(defined: {', '.join(sorted(defined)) or 'none'})"
        )


def _set_device(data: dict[str, Any], config: Mapping[str, Any]) -> None:
    """data.device = run.device; a slice without a ``run`` section keeps its own device
    (``--config-json`` of an already resolved slice)."""
    if "run" in config:
        data["device"] = str((config.get("run") or {}).get("device", "auto"))


def _named(kind: str, name: str | None, known: Iterable[str], section: str) -> str:
    known = sorted(known)
    if name is None or name not in known:
        what = "give one" if name is None else f"{name!r} is not defined"
        raise ConfigError(f"{section}: {kind} needed, {what} (defined: {', '.join(known)})")
    return name


UNSUPERVISED_STAGES = {"pretrain": ("pretrain",), "selflabel": ("selflabel",)}
UNSUPERVISED_STAGES["em"] = ("selflabel", "em")


def _unsupervised(config: Mapping[str, Any], dataset: str | None, stage: str | None) -> dict:
    un = _section(config, "unsupervised")
    over = _override(un, dataset)
    stage = _named("a stage", stage, UNSUPERVISED_STAGES, "unsupervised")
    out = {p: _layer(un, over, p) for p in ("data", *UNSUPERVISED_STAGES[stage])}
    _set_device(out["data"], config)
    return out


def _cpsp(config: Mapping[str, Any], dataset: str | None, experiment: str | None) -> dict:
    cp = _section(config, "cpsp")
    over = _override(cp, dataset)
    experiments = cp.get("experiments") or {}
    experiment = _named("an experiment", experiment, experiments, "cpsp")
    exp = copy.deepcopy(dict(experiments[experiment] or {}))
    own = (over.get("experiments") or {}).get(experiment) or {}
    data = merge(merge(_layer(cp, over, "data"), exp.pop("data", {})), own.get("data") or {})
    _set_device(data, config)
    train = merge(merge(_layer(cp, over, "train"), exp.pop("train", {})), own.get("train") or {})
    return {
        "experiment": experiment,
        "data": data,
        "model": _layer(cp, over, "model"),
        "run": {**exp, "train": train},
    }


def _avvp(config: Mapping[str, Any], dataset: str | None, method: str | None) -> dict:
    av = _section(config, "avvp")
    over = _override(av, dataset)
    from avpipe.methods.registry import methods_of

    variants = av.get("variants") or {}
    name = _named("a method or variant", method, [*methods_of("avvp"), *variants], "avvp")
    base = (variants.get(name) or {}).get("method", name)
    data = _layer(av, over, "data")
    _set_device(data, config)
    block = _layer(av, over, base)
    if name != base:  # a variant: its changes, then the dataset's changes to it
        block = merge(merge(block, variants[name].get("changes") or {}), over.get(name) or {})
    return {"data": data, base: block}


def _extract(config: Mapping[str, Any], dataset: str | None) -> dict:
    """What one (dataset, shard) extraction job computes: every recipe, and how."""
    ext, dec = _section(config, "extract"), _section(config, "decode")
    dec = merge({k: v for k, v in dec.items() if k != "overrides"}, _override(dec, dataset))
    over, recipes = _override(ext, dataset), ext.get("recipes") or {}
    names = (ext.get("stores") or {}).get(dataset, []) if dataset else []
    out: dict[str, Any] = {
        "recipes": {r: merge(recipes.get(r) or {}, over.get(r) or {}) for r in names}
    }
    out |= {k: dec[k] for k in ("shards", "on_error", "truncation_tolerance_s") if k in dec}
    keys = ("batch_size", "num_threads", "prefetch", "prepare", "keep_decoded", "store_codec")
    out |= {k: ext[k] for k in keys if k in ext}
    _set_device(out, config)
    return out


def _evaluate(
    config: Mapping[str, Any],
    dataset: str | None,
    task: str | None,
    experiment: str | None,
    method: str | None,
) -> dict:
    if task == "unsupervised":
        split = _section(config, "unsupervised").get("evaluate_split")
        return {} if split is None else {"split": split}
    if task == "ave":
        data = _cpsp(config, dataset, experiment)["data"]
        return {"split": data["evaluate_split"]} if "evaluate_split" in data else {}
    if task in ("avvp", "unav100"):
        out = dict(_section(config, "avvp").get("evaluate") or {})
        if task == "avvp":  # detection mAP: UnAV-100 data only (avpipe/metrics/unav.py)
            out.pop("detection", None)
        return out
    if task is None and method is not None:  # a generic family: its section's `evaluate`
        from avpipe.methods.registry import get

        return dict(_section(config, get(method).family).get("evaluate") or {})
    raise ConfigError(
        f"evaluate: task needed, one of ave, avvp, unav100, unsupervised (got {task!r})"
    )


def _synthetic(config: Mapping[str, Any], part: str | None) -> dict:
    from avpipe.datasets.synthetic.config import PARTS

    syn = _section(config, "synthetic")
    part = _named("a part", part, PARTS, "synthetic")
    return {k: v for k, v in syn.items() if k not in PARTS or k == part}


def resolve(
    section: str,
    dataset: str | None = None,
    *,
    config: Mapping[str, Any],
    experiment: str | None = None,
    method: str | None = None,
    stage: str | None = None,
    task: str | None = None,
    part: str | None = None,
) -> dict[str, Any]:
    """The config slice of one job, in the order of the module docstring.

    ``section`` names a stage's section of config.yaml: ``unsupervised`` (with ``stage``
    pretrain / selflabel / em), ``cpsp`` (with ``experiment``), ``avvp`` (with ``method``),
    ``extract``, ``evaluate`` (with ``task``, or ``method`` for a generic family),
    ``datasets``, ``synthetic`` (with ``part``), ``report``, or the section of a method
    family on the generic ``train`` stage (avpipe.methods.registry): that section without
    ``datasets``, ``overrides`` and ``evaluate``, merged with its override.  The result
    is what the stage's ``--config-json`` takes; a new dict every call.
    """
    _check_dataset(config, dataset)
    if section == "unsupervised":
        return _unsupervised(config, dataset, stage)
    if section == "cpsp":
        return _cpsp(config, dataset, experiment)
    if section == "avvp":
        return _avvp(config, dataset, method)
    if section == "extract":
        return _extract(config, dataset)
    if section == "evaluate":
        return _evaluate(config, dataset, task, experiment, method)
    if section == "datasets":
        name = _named("a dataset", dataset, config.get("datasets") or {}, "datasets")
        return copy.deepcopy(_section(config, "datasets")[name])
    if section == "synthetic":
        return _synthetic(config, part)
    if section == "report":
        return copy.deepcopy(_section(config, "report"))
    from avpipe.methods.registry import METHODS, generic

    if section in {METHODS[n].family for n in generic()}:
        sec = _section(config, section)
        over = _override(sec, dataset)
        skip = {"datasets", "overrides", "evaluate"}
        base = {k: v for k, v in sec.items() if k not in skip}
        out = merge(base, over)
        if isinstance(out.get("data"), dict):
            _set_device(out["data"], config)
        return out
    raise ConfigError(f"no config section {section!r} to resolve")
