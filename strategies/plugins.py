"""Strategies from outside the source tree: folders of modules and installed packages.

A trader keeps strategies in their own folder (``TRADESITE_STRATEGY_PATHS``, a list of folders)
or in an installed package that declares an entry point in the ``tradesite.strategies`` group::

    [project.entry-points."tradesite.strategies"]
    my_breakout = "my_package.breakout"          # a module whose classes use @register
    my_other = "my_package.other:OtherStrategy"  # or one Strategy subclass

:mod:`strategies.registry` calls :func:`load` once, after the built-in library. Each module is
loaded on its own: a module that fails (syntax error, import error, a name clash, an exception
at import) is recorded as a :class:`Failure` with its source and error and logged; the others
still load. Pure: standard library only.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import sys
import traceback
import types
from collections.abc import Callable, Iterable
from pathlib import Path

logger = logging.getLogger("strategies.plugins")

ENTRY_POINT_GROUP = "tradesite.strategies"


@dataclasses.dataclass(frozen=True)
class Failure:
    """One user module that did not load: where it is, and why (a trader reads this)."""

    source: str  # "folder /path/to/x.py" or "entry point name = module:attr"
    error: str  # "SyntaxError: invalid syntax (x.py, line 3)"

    def __str__(self) -> str:
        return f"{self.source}: {self.error}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f" ({Path(exc.filename or '?').name}, line {exc.lineno})"
        return f"SyntaxError: {exc.msg}{where}"
    # The deepest frame in the user's own code helps more than the loader's frames.
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = f" ({Path(last.filename).name}, line {last.lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def folder_modules(folder: Path) -> list[Path]:
    """The strategy modules of a folder: ``*.py`` files and packages, not ``_private`` or
    ``test_*`` ones, in name order."""
    found = []
    for path in sorted(folder.iterdir()):
        stem = path.stem if path.is_file() else path.name
        if stem.startswith(("_", ".", "test_")) or not stem.isidentifier():
            continue
        if (path.is_file() and path.suffix == ".py") or (path / "__init__.py").is_file():
            found.append(path)
    return found


def _import_from_folder(folder: Path, path: Path) -> None:
    name = path.stem if path.is_file() else path.name
    if str(folder) not in sys.path:
        sys.path.append(str(folder))  # so a strategy may import its helper modules
    importlib.invalidate_caches()
    module = importlib.import_module(name)
    origin = Path(getattr(module, "__file__", "") or "").resolve()
    if origin != path.resolve() and origin.parent != path.resolve():
        raise ImportError(
            f"the module name {name!r} is already taken by {origin or 'a built-in module'}; "
            "rename the file"
        )


def load(
    folders: Iterable[str | Path],
    register: Callable[[type], type],
    is_strategy: Callable[[object], bool],
    group: str = ENTRY_POINT_GROUP,
    registered: Callable[[], set[str]] = set,
    unregister: Callable[[str], None] = lambda name: None,
) -> list[Failure]:
    """Import every user strategy module; the failures (each also logged). A module that
    fails after registering some of its classes takes them back out (``registered`` and
    ``unregister``): half a module is not offered for trading."""
    failures: list[Failure] = []

    def attempt(source: str, action: Callable[[], None]) -> None:
        before = registered()
        try:
            action()
        except Exception as exc:  # any error in a user's module is reported, never raised
            for name in registered() - before:
                unregister(name)
            failure = Failure(source, _describe(exc))
            logger.error("user strategy not loaded: %s", failure, exc_info=exc)
            failures.append(failure)

    for entry in folders:
        folder = Path(entry).expanduser().resolve()
        if not folder.is_dir():
            failures.append(Failure(f"folder {folder}", "not a folder (TRADESITE_STRATEGY_PATHS)"))
            logger.error("user strategy folder not found: %s", folder)
            continue
        for path in folder_modules(folder):
            attempt(f"folder {path}", lambda path=path, folder=folder: _import_from_folder(
                folder, path))

    def from_entry_point(ep) -> None:
        target = ep.load()
        if is_strategy(target):
            register(target)
        elif not isinstance(target, types.ModuleType):
            raise TypeError(f"{ep.value} is neither a module nor a Strategy subclass")

    for ep in importlib.metadata.entry_points(group=group):
        attempt(f"entry point {ep.name} = {ep.value}", lambda ep=ep: from_entry_point(ep))
    return failures
