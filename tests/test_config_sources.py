"""Config has one source of defaults: the dataclasses.

The JSON schemas (workflow/schemas/, which fill in defaults when the DAG is built) and the
base sections of config/config.yaml restate some of them; these tests walk each schema
section beside its dataclass and fail on any default that disagrees, so that a default
changed in one place cannot silently differ between ``avpipe <stage>`` run by hand and
the workflow.  A study's own choices live in ``overrides`` and ``experiments`` (checked
by the dataclasses when the stage builds its config), not in the base sections.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from avpipe.config import to_dict
from avpipe.methods.avvp import DataConfig as AVVPData
from avpipe.methods.clcl import config as clcl
from avpipe.methods.coleaf.trainer import Config as CoLeaFConfig
from avpipe.methods.cpsp import config as cpsp
from avpipe.methods.cpsp.config import TrainConfig
from avpipe.methods.han.trainer import Config as HANConfig
from avpipe.metrics.avvp import EvalConfig
from avpipe.metrics.unav import Detection
from avpipe.report.config import ReportConfig
from avpipe.stages.extract import ExtractConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "workflow/schemas"

# (schema file, JSON pointer of an object schema inside it, dataclass, schema keys that
# are not the dataclass's: wiring of the workflow or patches merged by the resolver).
SECTIONS = [
    ("cpsp", "$defs/train", TrainConfig, set()),
    ("cpsp", "$defs/data", cpsp.DataConfig, set()),
    ("cpsp", "$defs/model", cpsp.ModelConfig, set()),
    # experiment.data / .train are patches of cpsp.data / cpsp.train (no defaults)
    ("cpsp", "$defs/experiment", cpsp.ExperimentConfig, {"data", "train"}),
    ("unsupervised", "properties/data", clcl.DataConfig, set()),
    ("unsupervised", "properties/pretrain", clcl.PretrainConfig, set()),
    ("unsupervised", "properties/selflabel", clcl.SelflabelConfig, set()),
    ("unsupervised", "properties/em", clcl.EMConfig, set()),
    ("avvp", "properties/data", AVVPData, set()),
    ("avvp", "properties/han", HANConfig, set()),
    ("avvp", "properties/coleaf", CoLeaFConfig, set()),
    # evaluate.detection: the unav100 task's own dataclass
    ("avvp", "properties/evaluate", EvalConfig, {"detection"}),
    ("avvp", "properties/evaluate/properties/detection", Detection, set()),
    # the job's ExtractConfig takes these from extract + decode; the rest is wiring
    ("extract", "properties", ExtractConfig, {"workers", "mem_mb", "cache", "cache_dir"}),
    ("decode", "properties", ExtractConfig, set()),
    ("report", "properties", ReportConfig, set()),
]
WIRING = {"overrides", "recipes", "stores"}


def _schema(name: str) -> dict[str, Any]:
    return yaml.safe_load((SCHEMAS / f"{name}.schema.yaml").read_text())


def _at(doc: dict[str, Any], pointer: str) -> dict[str, Any]:
    node: Any = doc
    for part in pointer.split("/"):
        node = node[part]
    return node


def _deref(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and node["$ref"].startswith("#/"):
        node = {**_at(doc, node["$ref"][2:]), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def defaults(cls: type) -> dict[str, Any]:
    """The dataclass's defaults as plain nested values (fields without one left out)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = _plain(f.default_factory())
    return out


def _plain(value: Any) -> Any:
    value = to_dict(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def agrees(given: Any, default: Any) -> bool:
    """``given`` (a schema default or a YAML value) states ``default``; a mapping may
    state only some of its keys."""
    if isinstance(given, dict) and isinstance(default, dict):
        return set(given) <= set(default) and all(agrees(v, default[k]) for k, v in given.items())
    return _plain(given) == default


def _properties(node: dict[str, Any]) -> dict[str, Any]:
    return node.get("properties", {})


def disagreements(
    doc: dict[str, Any], node: dict[str, Any], expected: Any, where: str, given: Any = None
) -> list[str]:
    """Every schema default under ``node`` that differs from ``expected`` (the dataclass's
    defaults, nested), and every schema key the dataclass does not have.  ``given``: the
    default of ``node`` itself, whose keys win over the nested defaults (not checked again).
    """
    out = []
    for key, sub in _properties(_deref(doc, node)).items():
        if not isinstance(sub, dict) or (isinstance(given, dict) and key in given):
            continue
        if not isinstance(expected, dict) or key not in expected:
            out.append(f"{where}.{key}: in the schema, not a default of the dataclass")
            continue
        sub = _deref(doc, sub)
        if "default" in sub and not agrees(sub["default"], expected[key]):
            out.append(f"{where}.{key}: schema {sub['default']!r}, dataclass {expected[key]!r}")
        out += disagreements(doc, sub, expected[key], f"{where}.{key}", sub.get("default"))
    return out


def _section_node(doc: dict[str, Any], pointer: str, skip: set[str]) -> dict[str, Any]:
    node = _deref(doc, _at(doc, pointer))
    if pointer == "properties":
        node = {"properties": node}
    props = {k: v for k, v in _properties(node).items() if k not in skip | WIRING}
    return {"properties": props}


@pytest.mark.parametrize(
    ("schema", "pointer", "cls", "skip"), SECTIONS, ids=[f"{s}:{p}" for s, p, _, _ in SECTIONS]
)
def test_schema_defaults_are_the_dataclass_defaults(
    schema: str, pointer: str, cls: type, skip: set[str]
) -> None:
    doc = _schema(schema)
    node = _section_node(doc, pointer, skip)
    assert disagreements(doc, node, defaults(cls), f"{schema}.{pointer}") == []


def test_every_schema_key_of_a_dataclass_section_has_a_default() -> None:
    """Validation fills in every key the stage reads, so the workflow and
    ``avpipe <stage> --config`` (whose absent keys take the dataclass defaults) agree."""
    missing = []
    for schema, pointer, _, skip in SECTIONS:
        doc = _schema(schema)
        missing += [
            f"{schema}.{pointer}.{k}"
            for k, sub in _properties(_section_node(doc, pointer, skip)).items()
            if "default" not in _deref(doc, sub)
        ]
    assert missing == []


# config/config.yaml's base sections restate defaults next to their comments; a study's
# own values go under overrides/experiments.  (section path, dataclass)
YAML_SECTIONS = [
    ("cpsp.train", TrainConfig),
    ("cpsp.data", cpsp.DataConfig),
    ("cpsp.model", cpsp.ModelConfig),
    ("unsupervised.data", clcl.DataConfig),
    ("unsupervised.pretrain", clcl.PretrainConfig),
    ("unsupervised.selflabel", clcl.SelflabelConfig),
    ("unsupervised.em", clcl.EMConfig),
    ("avvp.data", AVVPData),
    ("avvp.han", HANConfig),
    ("avvp.coleaf", CoLeaFConfig),
    ("avvp.evaluate", EvalConfig),
    ("avvp.evaluate.detection", Detection),
    ("report", ReportConfig),
]


def _yaml_differences(value: Any, expected: Any, where: str) -> list[str]:
    if not isinstance(value, dict) or not isinstance(expected, dict):
        ok = _plain(value) == expected
        return [] if ok else [f"{where}: config.yaml {value!r}, dataclass {expected!r}"]
    out = []
    for key, v in value.items():
        if key not in expected:
            out.append(f"{where}.{key}: not a default of the dataclass")
        else:
            out += _yaml_differences(v, expected[key], f"{where}.{key}")
    return out


def test_config_yaml_base_sections_restate_the_defaults() -> None:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    out = []
    for dotted, cls in YAML_SECTIONS:
        node: Any = cfg
        for part in dotted.split("."):
            node = node[part]
        expected = defaults(cls)
        if cls is EvalConfig:  # its detection key is the unav100 task's (Detection)
            node = {k: v for k, v in node.items() if k != "detection"}
        out += _yaml_differences(node, expected, dotted)
    assert out == []
