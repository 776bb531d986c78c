"""`make bench`: run every ``bench/bench_*.py`` module's ``run()`` and print one table.

Each module returns rows ``{"name", "value", "unit", "baseline", "baseline_value", "ratio"}``;
the baseline is measured in the same run, on the same machine, so ratios compare like with like.
Each module runs in its own process, so no benchmark inherits another's database connections,
caches or warm JIT. Pass module names to run a subset: ``python -m bench marketdata backtest``.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradesite.settings")
ROWS_MARK = "BENCH-ROWS:"


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def run_one(name: str) -> int:
    """Child process: run one module and print its rows as one JSON line."""
    module = importlib.import_module(f"bench.{name}")
    rows = module.run()
    print(ROWS_MARK + json.dumps(rows, default=str), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        return run_one(argv[1])
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        wanted = {a.removeprefix("bench_").removesuffix(".py") for a in argv}
        unknown = wanted - {n.removeprefix("bench_") for n in names}
        if unknown:
            print(f"no benchmark module named {', '.join(sorted(unknown))}; there are: "
                  + ", ".join(n.removeprefix("bench_") for n in names), file=sys.stderr)
            return 2
        names = [n for n in names if n.removeprefix("bench_") in wanted]
    rows, failures = [], []
    for name in names:
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "bench", "--one", name],
            stdout=subprocess.PIPE, text=True, check=False,
        )
        found = [line for line in proc.stdout.splitlines() if line.startswith(ROWS_MARK)]
        if proc.returncode != 0 or not found:
            failures.append(f"{name}: exited {proc.returncode} (see its output above)")
            sys.stderr.write(proc.stdout[-2000:])
        else:
            for row in json.loads(found[-1][len(ROWS_MARK):]):
                rows.append({"module": name.removeprefix("bench_"), **row})
        print(f"  {name} took {time.perf_counter() - started:.1f}s", file=sys.stderr)
    headers = ["module", "name", "value", "unit", "baseline", "baseline_value", "ratio"]
    table = [[fmt(row.get(h)) for h in headers] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in table)) if table else len(h)
        for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    for failure in failures:
        print("FAILED", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
