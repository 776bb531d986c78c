"""The single place strategies are registered and their parameters validated.

Everything that needs to know which strategies exist (the admin, the API, the backtester, the
optimizer, the trader) asks here. Adding a strategy is one module in ``strategies/library/`` with
``@register`` on its class.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from strategies.base import Strategy
from strategies.params import ParamError

_REGISTRY: dict[str, type[Strategy]] = {}
_loaded = False


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a name to be registered")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise TypeError(f"strategy name {cls.name!r} is taken by {existing.__name__}")
    cls.Params.label = f"strategy '{cls.name}'"
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a strategy (tests register throwaway ones)."""
    _REGISTRY.pop(name, None)


def _load_library() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        package = importlib.import_module("strategies.library")
    except ModuleNotFoundError:
        return
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"strategies.library.{module.name}")


def names() -> list[str]:
    _load_library()
    return sorted(_REGISTRY)


def choices() -> list[tuple[str, str]]:
    """(name, label) pairs for a form's select box."""
    _load_library()
    return [(name, name.replace("_", " ").title()) for name in sorted(_REGISTRY)]


def get(name: str) -> type[Strategy]:
    _load_library()
    try:
        return _REGISTRY[name]
    except KeyError:
        available = ", ".join(sorted(_REGISTRY)) or "none registered"
        raise ParamError(f"unknown strategy {name!r}; available: {available}") from None


def build(name: str, params: dict[str, Any] | None = None) -> Strategy:
    """An instance of strategy ``name`` with validated ``params`` (defaults fill the rest)."""
    cls = get(name)
    return cls(cls.Params.from_dict(params))


def validate_params(name: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Validated, complete parameters as a JSON-ready dict; ParamError explains what is wrong."""
    return build(name, params).params.to_dict()
