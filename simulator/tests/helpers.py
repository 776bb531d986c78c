"""Client-side signing written from the venues' documentation, independent of the simulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pathlib
import time
import uuid
from urllib.parse import urlencode

#: The one folder of recorded and documented venue payloads; the adapters' tests read it too.
PAYLOADS = pathlib.Path(__file__).parents[1] / "payloads"

UPBIT_KEY, UPBIT_SECRET = "sim-upbit-access-key", "sim-upbit-secret-key"
BINANCE_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
FUTURES_KEY, FUTURES_SECRET = "sim-futures-api-key", "sim-futures-secret-key"


def sample(name: str):
    return json.loads((PAYLOADS / name).read_text())["data"]


def load(name: str):
    """The ``data`` of ``payloads/<name>.json`` (the adapters' tests read the same files)."""
    return sample(f"{name}.json")


def sample_body(name: str, index: int = 0):
    return sample(name)[index]["response"]["body"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(payload: dict, secret: str, alg: str = "HS512") -> str:
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{_b64(sig)}"


def upbit_auth(
    query: str = "",
    *,
    key=UPBIT_KEY,
    secret=UPBIT_SECRET,
    alg="HS512",
    nonce: str | None = None,
    query_hash: str | None = None,
) -> dict:
    payload = {"access_key": key, "nonce": nonce or str(uuid.uuid4())}
    if query:
        payload |= {
            "query_hash": query_hash or hashlib.sha512(query.encode()).hexdigest(),
            "query_hash_alg": "SHA512",
        }
    return {"Authorization": f"Bearer {jwt(payload, secret, alg)}"}


def body_query(body: dict) -> str:
    return "&".join(f"{k}={v}" for k, v in body.items())


def binance_query(params: dict, secret: str, *, timestamp_ms: int | None = None) -> str:
    params = dict(params)
    params["timestamp"] = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    query = urlencode(params)
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


def same_shape(actual, expected, path: str = "") -> list[str]:
    """Keys of ``expected`` missing from ``actual`` or of another JSON type (numbers compare as
    numbers), recursively; an empty list means the shapes agree."""
    problems = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object"]
        for key, value in expected.items():
            if key.startswith("_"):
                continue
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            elif value is not None and actual[key] is not None:
                problems += same_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected an array"]
        if expected and actual:
            problems += same_shape(actual[0], expected[0], f"{path}[0]")
    else:
        kinds = (
            (bool,)
            if isinstance(expected, bool)
            else (int, float)
            if isinstance(expected, (int, float))
            else (str,)
        )
        if not isinstance(actual, kinds) or (isinstance(actual, bool) and kinds != (bool,)):
            problems.append(f"{path}: {type(actual).__name__} instead of {type(expected).__name__}")
    return problems
