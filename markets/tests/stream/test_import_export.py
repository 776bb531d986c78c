"""CSV import/export commands: all-or-nothing import naming bad lines; a lossless round trip."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from markets.models import Candle

pytestmark = pytest.mark.django_db

GOOD = """open_time,open,high,low,close,volume,quote_volume
2024-01-01T00:00:00Z,100.5,101.25,99.0,100.75,1.5,151.0
2024-01-01T00:01:00Z,100.75,102.0,100.5,101.0,0.1,10.1
2024-01-01T00:02:00Z,101.0,101.0,100.0,100.125,2.0,
"""
BAD_LINE_3 = GOOD.replace("100.75,102.0,100.5,101.0", "100.75,99.0,100.5,101.0")


def rows(symbol):
    return list(Candle.objects.filter(symbol=symbol, timeframe="1m").order_by("open_time")
                .values_list("open_time", "open", "high", "low", "close", "volume",
                             "quote_volume"))


def test_import_rejects_a_file_with_a_bad_row_names_its_line_and_writes_nothing(
        symbol, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_LINE_3)
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_candles", str(path), "--venue", "sim", "--symbol", "KRW-BTC",
                     "--timeframe", "1m")
    assert "line 3:" in capsys.readouterr().err
    assert Candle.objects.count() == 0


def test_import_with_skip_invalid_keeps_the_good_rows(symbol, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_LINE_3)
    call_command("import_candles", str(path), "--venue", "sim", "--symbol", "KRW-BTC",
                 "--timeframe", "1m", "--skip-invalid")
    out = capsys.readouterr()
    assert "line 3:" in out.err and "inserted 2" in out.out
    assert Candle.objects.count() == 2


def test_export_then_import_gives_identical_rows(symbol, exchange, tmp_path):
    from markets.models import Symbol

    source = tmp_path / "in.csv"
    source.write_text(GOOD)
    call_command("import_candles", str(source), "--venue", "sim", "--symbol", "KRW-BTC",
                 "--timeframe", "1m")
    exported = tmp_path / "out.csv"
    call_command("export_candles", "--venue", "sim", "--symbol", "KRW-BTC", "--timeframe",
                 "1m", "-o", str(exported))
    other = Symbol.objects.create(exchange=exchange, code="KRW-ETH", base="ETH", quote="KRW")
    call_command("import_candles", str(exported), "--venue", "sim", "--symbol", "KRW-ETH",
                 "--timeframe", "1m")
    assert len(rows(symbol)) == 3
    assert rows(other) == rows(symbol)
    assert rows(symbol)[2][6] is None  # an empty quote volume stays empty


def test_import_names_an_unknown_symbol(symbol, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(GOOD)
    with pytest.raises(CommandError, match="unknown symbol"):
        call_command("import_candles", str(path), "--venue", "sim", "--symbol", "KRW-DOGE",
                     "--timeframe", "1m")
