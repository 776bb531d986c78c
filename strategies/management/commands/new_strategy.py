"""``manage.py new_strategy NAME [--path DIR]``: start a strategy of your own.

Writes ``DIR/NAME.py`` (a documented, working moving-average crossover with two parameters,
``lookback`` and ``signals``) and ``DIR/test_NAME.py`` (its tests). DIR defaults to the first
folder of ``TRADESITE_STRATEGY_PATHS``; strategies load from the folders listed there.
"""

from __future__ import annotations

import keyword
import re
import string
from importlib import resources
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from strategies import registry

NAME = re.compile(r"[a-z][a-z0-9_]*")


def render(template: str, name: str, test_file: str) -> str:
    text = resources.files("strategies.user_template").joinpath(template).read_text()
    cls = "".join(part.capitalize() for part in name.split("_") if part)
    return string.Template(text).substitute(
        name=name, cls=cls, title=name.replace("_", " ").capitalize(), test_file=test_file)


class Command(BaseCommand):
    help = "Write a new strategy module and its test file from a documented template."

    def add_arguments(self, parser):
        parser.add_argument("name", help="strategy name: lower case letters, digits and _")
        parser.add_argument("--path", help="folder to write to (default: the first folder of "
                            "TRADESITE_STRATEGY_PATHS)")

    def handle(self, *args, **options):
        name = options["name"]
        if not NAME.fullmatch(name) or keyword.iskeyword(name) or len(name) > (
                registry.MAX_NAME_LENGTH):
            raise CommandError(
                f"{name!r} is not a usable strategy name: use lower case letters, digits and _, "
                f"starting with a letter, at most {registry.MAX_NAME_LENGTH} characters "
                "(e.g. my_breakout)")
        if name.startswith("test_"):
            raise CommandError(f"{name!r}: names starting with test_ are kept for test files")
        if name in registry.names():
            raise CommandError(f"a strategy named {name!r} exists already; choose another name")
        paths = list(getattr(settings, "TRADESITE_STRATEGY_PATHS", []))
        if options["path"]:
            folder = Path(options["path"]).expanduser()
        elif paths:
            folder = Path(paths[0]).expanduser()
        else:
            raise CommandError("give --path DIR, or set TRADESITE_STRATEGY_PATHS to the folder "
                               "of your strategies")
        module, test = folder / f"{name}.py", folder / f"test_{name}.py"
        for path in (module, test):
            if path.exists():
                raise CommandError(f"{path} exists already; it was not overwritten")
        folder.mkdir(parents=True, exist_ok=True)
        module.write_text(render("strategy.py.tmpl", name, str(test)))
        test.write_text(render("test_strategy.py.tmpl", name, str(test)))
        self.stdout.write(f"wrote {module} and {test}")
        listed = {Path(p).expanduser().resolve() for p in paths}
        if folder.resolve() not in listed:
            self.stdout.write(f"add {folder.resolve()} to TRADESITE_STRATEGY_PATHS so tradesite "
                              "loads it")
        self.stdout.write(
            f"next: python -m pytest {test}; python manage.py check_strategy {name} "
            "--venue V --symbol S --timeframe 1h; python manage.py backtest --strategy "
            f"{name} ...")
