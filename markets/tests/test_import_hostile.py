"""``import_candles`` on hostile files: every problem is a message naming its line (or the
command's own error), never a traceback; nothing is written unless every row is good (or
``--skip-invalid``)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from markets.csvio import parse_candles_csv
from markets.models import Candle

pytestmark = pytest.mark.django_db

HEADER = "open_time,open,high,low,close,volume\n"
GOOD = "2024-01-01T00:00:00Z,100.5,101.25,99.0,100.75,1.5\n"
MESSAGE = re.compile(r"^(line \d+: .+|\.\.\. and \d+ more bad line\(s\))$")


def run(tmp_path, content: bytes, *extra) -> tuple[str, str, bool]:
    """(stdout, stderr, succeeded) of importing ``content``."""
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_candles", str(path), "--venue", "sim", "--symbol", "KRW-BTC",
                     "--timeframe", "1m", *extra, stdout=out, stderr=err)
    except CommandError as exc:
        assert str(exc)
        return out.getvalue(), err.getvalue(), False
    return out.getvalue(), err.getvalue(), True


@pytest.mark.parametrize("row, message", [
    ("10000-01-01T00:00:00Z,1,1,1,1,1", "line 3: open_time '10000-01-01T00:00:00Z' is neither"),
    ("253402300800000,1,1,1,1,1", "line 3: open_time 253402300800000 is after 9999-12-31"),
    ("600000000000000000000,1,1,1,1,1", "line 3: open_time 600000000000000000000 is after"),
    ("9" * 4000 + ",1,1,1,1,1", "line 3: open_time 99999999999999999999... is after"),
    ("9999-12-31T23:59:00-01:00,1,1,1,1,1", "line 3: open_time '9999-12-31T23:59:00-01:00' is"
                                            " after 9999-12-31"),
    ("6e20,1,1,1,1,1", "line 3: open_time '6e20' is neither"),
    ("2024-01-01T00:01:00Z," + "1" * 200_000 + ",1,1,1,1", "line 3: longer than"),
    ('2024-01-01T00:01:00Z,"' + "1" * 200_000 + '",1,1,1,1', "line 3: longer than"),
    ("\x00\x01\x02,1,1,1,1,1", "line 3: "),
], ids=["iso-year-10000", "ms-year-10000", "6e20-ms", "4000-digits", "offset-past-9999",
        "6e20-text", "200kb-field", "200kb-quoted-field", "nul"])
def test_a_hostile_row_is_a_line_message_and_nothing_is_written(symbol, tmp_path, row, message):
    content = (HEADER + GOOD + row + "\n" + GOOD.replace("00:00:00", "00:02:00")).encode()
    _, err, ok = run(tmp_path, content)
    assert not ok and message in err, err
    assert Candle.objects.count() == 0
    _, err, ok = run(tmp_path, content, "--skip-invalid")
    assert ok and message in err and Candle.objects.count() == 2


def test_a_binary_file_is_named_line_by_line(symbol, tmp_path):
    content = HEADER.encode() + GOOD.encode() + b"\xff\xfe\x00garbage\x89PNG\r\n\x1a\n" + bytes(
        range(256))
    _, err, ok = run(tmp_path, content)
    assert not ok
    assert "line 3: not UTF-8 text" in err
    assert all(MESSAGE.match(line) for line in err.splitlines()), err
    assert Candle.objects.count() == 0


def test_a_binary_header_is_the_first_line_s_message(symbol, tmp_path):
    _, err, ok = run(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert not ok and err.startswith("line 1: not UTF-8 text"), err


def test_the_parser_reads_text_and_bytes_alike():
    text = HEADER + GOOD + "2024-01-01T00:01:00Z,\xff,1,1,1,1\n"
    rows_t, errors_t = parse_candles_csv(text, "1m")
    rows_b, errors_b = parse_candles_csv(io.BytesIO(text.encode()), "1m")
    assert rows_t == rows_b and len(rows_t) == 1
    assert [e.line for e in errors_t] == [e.line for e in errors_b] == [3]


CSVISH = st.text(alphabet="0123456789,.-:TZe+\"\n\r ", max_size=300)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.one_of(
    CSVISH.map(lambda t: (HEADER + t).encode()),
    st.binary(max_size=400).map(lambda b: HEADER.encode() + b),
    st.binary(max_size=400),
    st.lists(st.tuples(st.integers(-10**25, 10**25), st.floats(allow_nan=True),
                       st.floats(allow_nan=True)), max_size=5).map(
        lambda rows: (HEADER + "".join(f"{t},{a},{b},{a},{b},{a}\n" for t, a, b in rows))
        .encode()),
))
def test_hostile_csv_only_ever_gives_line_messages(symbol, tmp_path, body):
    Candle.objects.all().delete()
    for extra in ((), ("--skip-invalid",)):
        _, err, ok = run(tmp_path, body, *extra)
        assert all(MESSAGE.match(line) for line in err.splitlines()), err
        if not ok and not extra:
            assert Candle.objects.count() == 0
