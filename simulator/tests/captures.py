"""Field-by-field comparison of a simulator answer with a real venue capture (JSON kinds).

``compare(actual, expected)`` walks the capture: every field it has must be in the answer with
the same JSON kind (null, bool, number, string, array, object); ``nullable`` names the paths
(``[]`` for any array index) where the venue itself sends null or a value depending on the
order (Upbit's ``price`` of a market order, for one). Arrays of objects compare each of the
answer's first rows with the capture's first row; arrays of mixed kinds (Binance klines) compare
position by position. Fields the answer has and the capture lacks are returned as ``extras``.
"""

from __future__ import annotations

KINDS = ((type(None), "null"), (bool, "bool"), ((int, float), "number"), (str, "string"),
         (list, "array"), (dict, "object"))


def kind(value) -> str:
    return next(name for types, name in KINDS if isinstance(value, types))


def compare(actual, expected, nullable=frozenset(), path: str = ""):
    """(problems, extras) of ``actual`` against the capture ``expected``."""
    problems: list[str] = []
    extras: list[str] = []
    got, want = kind(actual), kind(expected)
    if got != want:
        if path in nullable and "null" in (got, want):
            return problems, extras
        return [f"{path or '.'}: {got} instead of {want}"], extras
    if want == "object":
        for key, value in expected.items():
            if key.startswith("_"):
                continue
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
                continue
            p, e = compare(actual[key], value, nullable, f"{path}.{key}")
            problems += p
            extras += e
        extras += [f"{path}.{key}" for key in actual if key not in expected]
    elif want == "array" and expected and actual:
        if len({kind(v) for v in expected}) > 1:  # a positional row (klines)
            if len(actual) != len(expected):
                problems.append(f"{path}: {len(actual)} items instead of {len(expected)}")
            for i, (a, x) in enumerate(zip(actual, expected, strict=False)):
                p, e = compare(a, x, nullable, f"{path}[{i}]")
                problems += p
                extras += e
        else:
            for row in actual[:3]:
                p, e = compare(row, expected[0], nullable, f"{path}[]")
                problems += p
                extras += e
    return problems, sorted(set(extras))
