from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from avpipe.config import ConfigError, from_dict


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    epochs: int
    inner: Inner = field(default_factory=Inner)
    seeds: tuple[int, ...] = (0,)


def test_builds_nested_and_converts() -> None:
    cfg = from_dict(Outer, {"epochs": 3, "inner": {"lr": 1, "mode": "b"}, "seeds": [1, 2]})
    assert cfg == Outer(epochs=3, inner=Inner(lr=1.0, mode="b"), seeds=(1, 2))
    assert isinstance(cfg.inner.lr, float)


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match="'epoch'"):
        from_dict(Outer, {"epoch": 3})


def test_bad_value_names_the_path() -> None:
    with pytest.raises(ConfigError, match=r"config\.inner\.mode: 'c'"):
        from_dict(Outer, {"epochs": 1, "inner": {"mode": "c"}})
    with pytest.raises(ConfigError, match=r"config\.epochs: expected an integer"):
        from_dict(Outer, {"epochs": 1.5})
