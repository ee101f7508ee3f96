"""Registries: the one place each kind of component is named.

A registry maps names (what configs, the CLI and error messages use) to entries (a class or a
factory). Every component kind (losses, distances, backbones, data sets, objectives, optimisers,
schedules, augmentations, episode scorers) has exactly one, and config validation, CLI choices,
suggestions and listings read it, so a new component is one file plus one ``register`` call
next to it. Everything may import this module; it imports nothing of metriclab.

>>> SHAPES = Registry("shape", key="model.shape")
>>> @SHAPES.register("square")
... class Square: ...
>>> SHAPES.get("square") is Square
True
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

T = TypeVar("T")


class UnknownName(ValueError):
    """A name no registry entry has; the message names the key, a close match and the choices."""


class Registry(Generic[T]):
    """Names → entries of one component kind.

    Args:
        kind: what the entries are, for messages ("loss", "data set").
        key: the config key that names an entry ("train.loss"), for messages; optional.
    """

    def __init__(self, kind: str, key: str | None = None) -> None:
        self.kind = kind
        self.key = key
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, entry: T) -> T: ...
    def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
        """Add ``entry`` under ``name``; without ``entry``, a decorator that adds what it wraps.

        A name registered twice is an error (two components cannot answer to one name), unless
        it is the same entry again (a module imported twice).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def add(item: T) -> T:
            known = self._entries.get(name)
            if known is not None and known is not item:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered ({_describe(known)}); "
                    "choose another name or unregister the old entry first"
                )
            self._entries[name] = item
            return item

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> T:
        """Remove and return the entry ``name`` (tests that add a toy component clean up)."""
        self.get(name)
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        """The entry ``name``; :class:`UnknownName` naming the closest name and all choices."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def unknown(self, name: object, extra: str = "", key: str | None = None) -> UnknownName:
        """The error for an unknown ``name`` (``extra`` adds other valid spellings; ``key``
        names another config key that takes this registry's names)."""
        key = key or self.key
        where = f" for {key}" if key else ""
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return UnknownName(
            f"unknown {self.kind} {name!r}{where}{hint}; choose one of {self.choices()}{extra}"
        )

    def choices(self) -> str:
        """The names, comma-separated, for messages."""
        return ", ".join(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {self.choices()})"


def _describe(entry: object) -> str:
    return getattr(entry, "__qualname__", type(entry).__qualname__)
