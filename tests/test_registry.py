"""The generic registry: names, decorator registration, one clear error for unknown names."""

from __future__ import annotations

import pytest

from metriclab.registry import Registry, UnknownName


def test_register_as_decorator_and_direct() -> None:
    registry: Registry[type] = Registry("shape", key="model.shape")

    @registry.register("square")
    class Square:
        pass

    registry.register("circle", int)
    assert registry.get("square") is Square
    assert registry["circle"] is int
    assert registry.names() == ("square", "circle")
    assert "square" in registry and "triangle" not in registry
    assert len(registry) == 2 and list(registry) == ["square", "circle"]


def test_unknown_name_names_key_suggestion_and_choices() -> None:
    registry: Registry[int] = Registry("shape", key="model.shape")
    registry.register("square", 1)
    registry.register("circle", 2)
    with pytest.raises(UnknownName) as failure:
        registry.get("sqare")
    message = str(failure.value)
    assert "unknown shape 'sqare' for model.shape" in message
    assert "did you mean 'square'?" in message
    assert message.endswith("choose one of square, circle")
    assert isinstance(failure.value, ValueError)


def test_unhashable_name_is_refused_cleanly() -> None:
    registry: Registry[int] = Registry("shape")
    with pytest.raises(UnknownName, match=r"unknown shape \['a'\]"):
        registry.get(["a"])  # type: ignore[arg-type]


def test_duplicate_name_refused_but_same_entry_is_idempotent() -> None:
    registry: Registry[object] = Registry("shape")
    registry.register("square", int)
    registry.register("square", int)
    with pytest.raises(ValueError, match="'square' is already registered"):
        registry.register("square", float)


def test_unregister_removes_and_returns() -> None:
    registry: Registry[object] = Registry("shape")
    registry.register("square", int)
    assert registry.unregister("square") is int
    assert "square" not in registry
    with pytest.raises(UnknownName):
        registry.unregister("square")


def test_empty_name_refused() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        Registry("shape").register("", int)
