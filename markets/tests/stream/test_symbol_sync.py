"""Whole-market following (issue 20): a venue set to follow all its symbols gets the venue's
listings as active symbols and loses its delistings, and the stream reloads on the change."""

from __future__ import annotations

import pytest

from markets.models import Exchange, Symbol
from markets.symbol_changes import changed_key
from markets.symbol_sync import sync_symbols

from .conftest import make_sim_venue, sim_adapter_factory

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def active_codes(exchange):
    return set(exchange.symbols.filter(is_active=True).values_list("code", flat=True))


def test_new_listings_are_added_delistings_deactivated_and_the_stream_told(sim, clean_redis):
    exchange, _ = make_sim_venue(sim, codes=("KRW-BTC", "KRW-GONE"))
    exchange.follow_all_symbols = True
    exchange.save()
    clean_redis.delete(changed_key())

    report = sync_symbols(adapter_factory=sim_adapter_factory(sim))

    assert active_codes(exchange) == {"KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL"}
    assert sorted(report.added) == ["sim:KRW-ETH", "sim:KRW-SOL", "sim:KRW-XRP"]
    assert report.deactivated == ["sim:KRW-GONE"]
    assert Symbol.objects.filter(code="KRW-GONE").exists()  # its candles stay
    assert clean_redis.get(changed_key()) is not None  # the stream reloads its symbols
    eth = Symbol.objects.get(exchange=exchange, code="KRW-ETH")
    assert eth.quote == "KRW" and eth.base == "ETH" and eth.market_type == "spot"
    assert eth.timeframes == ["1m", "3m", "5m", "15m", "30m", "1h", "4h", "1d"]

    again = sync_symbols(adapter_factory=sim_adapter_factory(sim))
    assert not again.changed and again.venues == 1

    # A relisting is followed again.
    Symbol.objects.filter(code="KRW-SOL").update(is_active=False)
    assert sync_symbols(adapter_factory=sim_adapter_factory(sim)).reactivated == ["sim:KRW-SOL"]


def test_a_venue_not_following_all_and_an_unreachable_one_are_left_as_they_are(sim, clean_redis):
    exchange, _ = make_sim_venue(sim, codes=("KRW-BTC", "KRW-GONE"))
    assert sync_symbols(adapter_factory=sim_adapter_factory(sim)).venues == 0
    assert active_codes(exchange) == {"KRW-BTC", "KRW-GONE"}

    Exchange.objects.filter(pk=exchange.pk).update(follow_all_symbols=True,
                                                   rest_url="http://127.0.0.1:1")
    exchange.refresh_from_db()
    report = sync_symbols()
    assert "sim" in report.failed and active_codes(exchange) == {"KRW-BTC", "KRW-GONE"}


def test_the_task_is_registered_on_the_collector_queue():
    from django.conf import settings

    from markets import tasks

    assert tasks.sync_symbols.name == "markets.tasks.sync_symbols"
    assert settings.CELERY_TASK_ROUTES["markets.tasks.*"]["queue"] == "collector"


def test_a_superuser_switches_whole_market_following_on_in_the_admin(sim, clean_redis):
    from django.contrib.auth import get_user_model
    from django.test import Client

    exchange, _ = make_sim_venue(sim)
    root = get_user_model().objects.create_superuser("root", password="pw-root")
    client = Client()
    client.force_login(root)
    url = f"/admin/markets/exchange/{exchange.pk}/change/"
    assert 'name="follow_all_symbols"' in client.get(url).content.decode()
    form = {"slug": exchange.slug, "name": exchange.name, "adapter": exchange.adapter,
            "rest_url": exchange.rest_url, "ws_url": exchange.ws_url, "is_active": "on",
            "follow_all_symbols": "on"}
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    exchange.refresh_from_db()
    assert exchange.follow_all_symbols
    listed = client.get("/admin/markets/exchange/?follow_all_symbols__exact=1")
    assert listed.status_code == 200 and f"/{exchange.pk}/change/" in listed.content.decode()
    unlisted = client.get("/admin/markets/exchange/?follow_all_symbols__exact=0")
    assert f"/{exchange.pk}/change/" not in unlisted.content.decode()


def test_follow_quotes_keeps_only_the_named_quotes_and_is_checked(clean_redis):
    from decimal import Decimal
    from types import SimpleNamespace

    from django.core.exceptions import ValidationError

    from markets.exchanges.base import SymbolInfo

    def info(code, quote):
        return SymbolInfo(code, code.split("-")[1], quote, "spot", None, Decimal("0.0001"),
                          None, Decimal("5000"))

    listed = [info("KRW-BTC", "KRW"), info("KRW-ETH", "KRW"), info("BTC-ETH", "BTC"),
              info("USDT-BTC", "USDT")]
    venue = Exchange.objects.create(slug="up", name="Up", adapter="upbit",
                                    rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1",
                                    follow_all_symbols=True, follow_quotes="krw")
    Symbol.objects.create(exchange=venue, code="BTC-ETH", base="ETH", quote="BTC")
    fake = SimpleNamespace(list_symbols=lambda: listed, close=lambda: None)
    report = sync_symbols(adapter_factory=lambda exchange: fake)
    assert active_codes(venue) == {"KRW-BTC", "KRW-ETH"}
    assert report.deactivated == ["up:BTC-ETH"]  # another quote: no longer followed
    assert Symbol.objects.get(code="KRW-BTC").step_size == Decimal("0.0001")

    venue.follow_quotes = "KRW, USD-T"
    with pytest.raises(ValidationError, match="USD-T"):
        venue.full_clean()
