"""Several stream processes ("shards") split the followed (venue, symbol) set through Redis.

* **Membership.** Each shard keeps a hash ``tradesite:stream:shard:<id>`` (``ts_ms``, the venues
  it takes, how many symbols it follows, host and pid) with a TTL of ``STREAM_SHARD_TTL_S``
  (default 15 s), refreshed every couple of seconds; the symbols it follows are in the set
  ``tradesite:stream:shard:<id>:symbols`` (``venue:code``), same TTL. The live shards are the keys
  that have not expired: a SIGKILLed shard drops out after at most the TTL (on its own
  machine, after ``stale_s`` when its pid is gone: a restarted process takes over at once), a
  stopped one at once (it deletes its keys).
* **Assignment.** Rendezvous (highest random weight) hashing: a symbol belongs to the live shard,
  among those that take its venue, with the highest ``hash(shard, venue, code)``. Every shard
  computes the same owner from the same membership, so there is no lock, no leader and no
  stored assignment; a shard joining or leaving moves only the symbols it wins or held (about
  1/n of them).
* **Hand-over.** Each shard re-reads the membership every reload tick and applies its new
  share (``StreamRunner._apply``: gained symbols start as a part of their own, parts that lost
  a symbol restart). Two shards may follow a symbol for a moment (their views
  of the membership differ by a tick): closed bars are upserted, so the second write is the same
  row; a symbol nobody follows for a moment (a dead shard's key has not expired yet) is caught
  up from its last stored candle over REST when its new shard starts it
  (:meth:`markets.stream.gaps.GapFill._init_catchup`).

Without Redis (at start, or it goes away) a shard keeps the membership it last saw (at start:
itself alone, so it follows every symbol of its venues, as one stream process always did).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping

SHARD_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class Member:
    """A live shard: its id and the venues it takes (None: every venue)."""

    id: str
    venues: frozenset[str] | None = None

    def takes(self, venue: str) -> bool:
        return self.venues is None or venue in self.venues


def default_shard_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def check_shard_id(shard_id: str) -> str:
    if not SHARD_ID.match(shard_id or ""):
        raise ValueError(f"STREAM_SHARD_ID {shard_id!r}: use 1 to 64 letters, digits, '.', '_' "
                         "or '-' (it names Redis keys and heartbeats)")
    return shard_id


def weight(shard: str, venue: str, code: str) -> int:
    """The shard's random but fixed weight for a symbol (64 bits of BLAKE2b)."""
    digest = hashlib.blake2b(f"{shard}\x00{venue}\x00{code}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(venue: str, code: str, members: Iterable[Member]) -> str | None:
    """The shard that follows ``venue:code``: the highest weight among the members that take
    the venue (ties, which 64-bit weights make vanishingly rare, go to the smaller id)."""
    best: tuple[int, str] | None = None
    for m in members:
        if m.takes(venue):
            w = (weight(m.id, venue, code), m.id)
            if best is None or w[0] > best[0] or (w[0] == best[0] and w[1] < best[1]):
                best = w
    return None if best is None else best[1]


def assign(symbols: Iterable[tuple[str, str]], members: Iterable[Member]
           ) -> dict[tuple[str, str], str | None]:
    """Owner of each ``(venue, code)`` (None: no live shard takes its venue)."""
    members = list(members)
    return {key: owner(key[0], key[1], members) for key in symbols}


def parse_venues(value: str | Iterable[str] | None) -> frozenset[str] | None:
    """``"upbit,bithumb"`` (or a list) -> the set; empty or ``*`` -> None (every venue)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    venues = frozenset(v.strip() for v in items if v.strip())
    return None if not venues or "*" in venues else venues


class ShardRegistry:
    """This shard's membership record in Redis and the live members, read from there."""

    def __init__(self, shard_id: str, venues: frozenset[str] | None, *, client=None,
                 prefix: str = "tradesite:", ttl_s: float = 15.0, stale_s: float = 5.0
                 ) -> None:
        self.id = check_shard_id(shard_id)
        self.venues = venues
        self.ttl_s = ttl_s
        #: A record this old from a process of this host that no longer exists is dead
        #: (0: only the TTL ends a shard).
        self.stale_s = stale_s
        self._client = client
        self.prefix = f"{prefix}stream:shard:"
        self.me = Member(self.id, venues)
        self.last_members: dict[str, Member] = {self.id: self.me}
        self._following: frozenset[str] | None = None
        #: Another process beat under this id since our last beat (a misconfiguration: both
        #: follow the same share, and the shards' shares do not add up as they should).
        self.duplicate = False

    @property
    def client(self):
        if self._client is None:
            from markets import heartbeat

            self._client = heartbeat.client()
        return self._client

    def key(self, shard_id: str | None = None) -> str:
        return self.prefix + (shard_id or self.id)

    def beat(self, following: Iterable[str] | None = None) -> None:
        """Refresh this shard's keys; ``following`` (``venue:code``) replaces its symbol set."""
        ttl_ms = max(1000, int(self.ttl_s * 1000))
        pipe = self.client.pipeline()
        fields = {"ts_ms": int(time.time() * 1000),
                  "venues": ",".join(sorted(self.venues)) if self.venues else "*",
                  "host": socket.gethostname(), "pid": os.getpid()}
        if following is not None:
            following = frozenset(following)
            fields["symbols"] = len(following)
            if following != self._following:
                pipe.delete(self.key() + ":symbols")
                if following:
                    pipe.sadd(self.key() + ":symbols", *sorted(following))
        pipe.hset(self.key(), mapping=fields)
        pipe.pexpire(self.key(), ttl_ms)
        pipe.pexpire(self.key() + ":symbols", ttl_ms)
        pipe.execute()
        if following is not None:
            self._following = following

    def members(self) -> dict[str, Member]:
        """The live shards (this one always among them). Raises when Redis does not answer;
        :meth:`members_or_last` keeps the last view then."""
        found = {self.id: self.me}
        for shard_id, fields in read_shards(self.client, self.prefix).items():
            if shard_id == self.id:
                self.duplicate = (fields.get("host"), fields.get("pid")) != (
                    socket.gethostname(), str(os.getpid()))
            elif self._dead_here(fields):
                # A shard of this machine that was killed (a restart under a new pid): its
                # symbols move now rather than when its key expires.
                self.client.delete(self.key(shard_id), self.key(shard_id) + ":symbols")
            else:
                found[shard_id] = Member(shard_id, parse_venues(fields.get("venues")))
        self.last_members = found
        return found

    def _dead_here(self, fields: Mapping[str, str]) -> bool:
        """A record of this host whose process is gone and that missed its beats."""
        if fields.get("host") != socket.gethostname():
            return False
        try:
            pid, ts_ms = int(fields.get("pid", "")), int(fields.get("ts_ms", ""))
        except ValueError:
            return False
        if not self.stale_s or pid == os.getpid() or (
                time.time() * 1000 - ts_ms < self.stale_s * 1000):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, another user's
            return False
        return False

    def leave(self) -> None:
        self.client.delete(self.key(), self.key() + ":symbols")
        self._following = None


def read_shards(client, prefix: str) -> dict[str, dict[str, str]]:
    """Live shard records: id -> hash fields (``ts_ms``, ``venues``, ``symbols`` ...)."""
    names = [k for k in client.scan_iter(match=prefix + "*", count=500)
             if not k.endswith(":symbols")]
    if not names:
        return {}
    pipe = client.pipeline()
    for name in names:
        pipe.hgetall(name)
    return {name[len(prefix):]: fields for name, fields in zip(names, pipe.execute())
            if fields}


def venue_beats(beats: Mapping[str, Mapping[str, str]]) -> dict[str, dict]:
    """The stream heartbeats (``<venue>@<shard>#<part>`` -> fields) merged per venue:
    counters summed, ``ts_ms`` and ``last_message_ms`` the newest, ``state`` the worst, and
    ``shards`` the shard parts streaming it (a heartbeat without ``@``, from an older stream,
    counts as one)."""
    rank = {"streaming": 0, "polling": 1, "down": 2}
    out: dict[str, dict] = {}
    for name, fields in sorted(beats.items()):
        venue, _, shard = name.partition("@")
        merged = out.setdefault(venue, {"shards": []})
        merged["shards"].append(shard or "-")
        for k, v in fields.items():
            old = merged.get(k)
            if old is None:
                merged[k] = v
            elif k == "state":
                merged[k] = max(old, v, key=lambda s: rank.get(s, 3))
            elif k in ("ts_ms", "last_message_ms"):
                merged[k] = str(max(_int(old), _int(v)))
            elif _is_int(old) and _is_int(v):
                merged[k] = str(int(old) + int(v))
    return out


def _is_int(v) -> bool:
    try:
        int(v)
    except (TypeError, ValueError):
        return False
    return True


def _int(v) -> int:
    return int(v) if _is_int(v) else 0
