"""The single place strategies are registered and their parameters validated.

Everything that needs to know which strategies exist (the admin, the API, the backtester, the
optimizer, the trader) asks here. Adding a strategy is one module with ``@register`` on its
class: in ``strategies/library/`` (built in), in a folder named by ``TRADESITE_STRATEGY_PATHS``
or in an installed package's ``tradesite.strategies`` entry point (see
:mod:`strategies.plugins` and docs/strategies.md). User strategies load after the built-in ones;
one that fails is listed by :func:`failures` and never stops the others.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import threading
from collections.abc import Iterable
from typing import Any

from strategies import plugins
from strategies.base import Strategy
from strategies.params import ParamError

#: Longest strategy name (``StrategyConfig.strategy`` stores it).
MAX_NAME_LENGTH = 40

_REGISTRY: dict[str, type[Strategy]] = {}
_loaded = False
#: Where user strategies come from (set by ``strategies.apps`` from the settings).
_sources: dict[str, Any] = {"paths": (), "group": plugins.ENTRY_POINT_GROUP}
_user_loaded = False
_loading_user = False
_user_names: set[str] = set()
_user_modules: set[str] = set()
_failures: list[plugins.Failure] = []
#: Loading happens once per process, whichever thread asks first; the others wait for it.
_lock = threading.RLock()


def _origin(cls: type) -> str:
    kind = "user strategy" if cls.name in _user_names else "built-in strategy"
    return f"the {kind} {cls.__name__} ({cls.__module__})"


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name or not isinstance(cls.name, str):
        raise TypeError(f"{cls.__name__} needs a name to be registered (name = \"my_strategy\")")
    if len(cls.name) > MAX_NAME_LENGTH:
        raise TypeError(
            f"strategy name {cls.name!r} is {len(cls.name)} characters; at most "
            f"{MAX_NAME_LENGTH}"
        )
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise TypeError(
            f"strategy name {cls.name!r} is taken by {_origin(existing)}; "
            f"rename {cls.__name__} (its name attribute)"
        )
    cls.Params.label = f"strategy '{cls.name}'"
    _REGISTRY[cls.name] = cls
    if _loading_user:
        _user_names.add(cls.name)
    return cls


def unregister(name: str) -> None:
    """Remove a strategy (tests register throwaway ones)."""
    _REGISTRY.pop(name, None)


def _forget_user(name: str) -> None:
    _REGISTRY.pop(name, None)
    _user_names.discard(name)


def _is_strategy(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, Strategy) and obj is not Strategy


def configure(paths: Iterable[str] | None = None, group: str | None = None) -> None:
    """Where user strategies come from; they (re)load on the next lookup."""
    if paths is not None:
        _sources["paths"] = tuple(str(p) for p in paths)
    if group is not None:
        _sources["group"] = group
    _unload_user()


def _unload_user() -> None:
    global _user_loaded
    with _lock:
        for name in _user_names:
            _REGISTRY.pop(name, None)
        for module in _user_modules:
            sys.modules.pop(module, None)
        _user_names.clear()
        _user_modules.clear()
        _failures.clear()
        _user_loaded = False


def _load_user() -> None:
    global _user_loaded, _loading_user
    before = set(sys.modules)
    _loading_user = True
    try:
        _failures.extend(plugins.load(
            _sources["paths"], register, _is_strategy, _sources["group"],
            registered=lambda: set(_REGISTRY), unregister=_forget_user))
    finally:
        _loading_user = False
        _user_modules.update(set(sys.modules) - before)
        _user_loaded = True  # only now: other threads wait on the lock until it is complete


def load_built_in() -> None:
    """Import the built-in library only (the kernel build needs no user strategy)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        try:
            package = importlib.import_module("strategies.library")
        except ModuleNotFoundError:
            return
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"strategies.library.{module.name}")


def _load_library() -> None:
    if _loaded and _user_loaded:
        return
    with _lock:
        load_built_in()
        # A user module that looks a strategy up while it loads sees what is loaded so far.
        if not _user_loaded and not _loading_user:
            _load_user()


def failures() -> list[plugins.Failure]:
    """User strategy modules that did not load, with their errors."""
    _load_library()
    return list(_failures)


def is_user(name: str) -> bool:
    """Whether ``name`` is a user strategy (from a folder or a package), not a built-in one."""
    _load_library()
    return name in _user_names


def takes_peers(name: str) -> bool:
    """Whether strategy ``name`` declares a ``symbols`` list: its ``signals`` takes
    ``peer_closes`` and the screener may fill its universe."""
    return "symbols" in get(name).Params.names()


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
        broken = "".join(f"; not loaded: {failure}" for failure in _failures)
        raise ParamError(f"unknown strategy {name!r}; available: {available}{broken}") from None


def build(name: str, params: dict[str, Any] | None = None) -> Strategy:
    """An instance of strategy ``name`` with validated ``params`` (defaults fill the rest)."""
    cls = get(name)
    return cls(cls.Params.from_dict(params))


def validate_params(name: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Validated, complete parameters as a JSON-ready dict; ParamError explains what is wrong."""
    return build(name, params).params.to_dict()
