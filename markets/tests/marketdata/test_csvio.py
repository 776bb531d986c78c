"""CSV candles: every rejected row says where and why; write then parse gives the same bits."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from markets.csvio import (
    CandleRow,
    CsvError,
    format_open_time,
    parse_candles_csv,
    parse_open_time,
    write_candles_csv,
)
from markets.timeframes import TIMEFRAME_MS, TIMEFRAMES

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000
HEADER = "open_time,open,high,low,close,volume\n"


def parse(text, timeframe="1m"):
    return parse_candles_csv(text, timeframe)


def test_parses_iso_times_with_z_or_offset_and_epoch_ms():
    rows, errors = parse(
        HEADER
        + "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n"
        + "2024-01-01T09:01:00+09:00,1.5,2,1,1.25,0\n"
        + f"{T0 + 2 * MIN},1.25,1.25,1.25,1.25,3.5\n"
    )
    assert errors == []
    assert rows == [
        CandleRow(T0, 1.0, 2.0, 0.5, 1.5, 10.0, None),
        CandleRow(T0 + MIN, 1.5, 2.0, 1.0, 1.25, 0.0, None),
        CandleRow(T0 + 2 * MIN, 1.25, 1.25, 1.25, 1.25, 3.5, None),
    ]


def test_columns_in_any_order_with_optional_quote_volume_and_blank_lines():
    text = (
        " Close , OPEN,high,low,volume,quote_volume,open_time\n"
        "\n"
        "1.5,1,2,0.5,10,15.5,2024-01-01T00:00:00Z\n"
        "1.5,1,2,0.5,10,,2024-01-01T00:01:00Z\n"
    )
    rows, errors = parse(text)
    assert errors == []
    assert rows == [
        CandleRow(T0, 1.0, 2.0, 0.5, 1.5, 10.0, 15.5),
        CandleRow(T0 + MIN, 1.0, 2.0, 0.5, 1.5, 10.0, None),
    ]


def test_accepts_open_file_list_of_lines_and_bytes_with_bom():
    text = HEADER + "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n"
    expected = [CandleRow(T0, 1.0, 2.0, 0.5, 1.5, 10.0)]
    assert parse(io.StringIO(text)) == (expected, [])
    assert parse(text.splitlines(keepends=True)) == (expected, [])
    assert parse(("\ufeff" + text).encode()) == (expected, [])
    assert parse(io.BytesIO(("\ufeff" + text).encode())) == (expected, [])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2024-01-01T00:00:00Z,nan,2,0.5,1.5,10", "open is nan; prices and volumes must be finite"),
        ("2024-01-01T00:00:00Z,1,inf,0.5,1.5,10", "high is inf"),
        ("2024-01-01T00:00:00Z,1,2,0.5,abc,10", "close 'abc' is not a number"),
        ("2024-01-01T00:00:00Z,1,2,,1.5,10", "low is empty"),
        ("2024-01-01T00:00:00Z,1,1.2,0.5,1.5,10", "high 1.2 is below open 1.0 or close 1.5"),
        ("2024-01-01T00:00:00Z,1,2,1.1,1.5,10", "low 1.1 is above open 1.0 or close 1.5"),
        ("2024-01-01T00:00:00Z,1,2,0,1.5,10", "low 0.0 must be above zero"),
        ("2024-01-01T00:00:00Z,1,2,-1,1.5,10", "low -1.0 must be above zero"),
        ("2024-01-01T00:00:00Z,1,2,0.5,1.5,-3", "volume -3.0 is negative"),
        ("2024-01-01T00:00:30Z,1,2,0.5,1.5,10", "is not the start of a 1m candle"),
        ("2024-01-01T00:00:00,1,2,0.5,1.5,10", "has no time zone; add Z for UTC"),
        ("1704067200,1,2,0.5,1.5,10", "looks like epoch seconds; write epoch milliseconds"),
        ("yesterday,1,2,0.5,1.5,10", "neither epoch milliseconds nor an ISO-8601 time"),
        ("2024-01-01T00:00:00Z,1,2,0.5,1.5", "expected 6 values like the header, found 5"),
    ],
)
def test_each_bad_row_is_rejected_with_its_line_and_a_reason(row, message):
    text = HEADER + "2024-01-01T00:05:00Z,1,2,0.5,1.5,10\n" + row + "\n"
    rows, errors = parse(text)
    assert [r.open_time_ms for r in rows] == [T0 + 5 * MIN]
    assert len(errors) == 1
    assert errors[0].line == 3
    assert message in errors[0].message, errors[0].message


def test_negative_quote_volume_is_rejected():
    rows, errors = parse(
        "open_time,open,high,low,close,volume,quote_volume\n"
        "2024-01-01T00:00:00Z,1,2,0.5,1.5,10,-1\n"
    )
    assert rows == []
    assert str(errors[0]) == "line 2: quote_volume -1.0 is negative"


def test_duplicate_open_time_names_the_first_line_even_across_formats():
    rows, errors = parse(
        HEADER
        + "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n"
        + f"{T0},1,2,0.5,1.5,11\n"
        + "2024-01-01T09:00:00+09:00,1,2,0.5,1.5,12\n"
    )
    assert [r.volume for r in rows] == [10.0]
    assert errors == [
        CsvError(3, "open_time 2024-01-01T00:00:00Z repeats line 2"),
        CsvError(4, "open_time 2024-01-01T00:00:00Z repeats line 2"),
    ]


def test_alignment_is_checked_for_the_given_timeframe():
    text = HEADER + "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n2024-01-01T02:00:00Z,1,2,0.5,1.5,10\n"
    rows, errors = parse(text, "4h")
    assert [r.open_time_ms for r in rows] == [T0]
    assert errors[0].line == 3
    assert "not the start of a 4h candle (nearest earlier start: 2024-01-01T00:00:00Z)" in (
        errors[0].message
    )
    with pytest.raises(ValueError, match="unknown timeframe"):
        parse(text, "2h")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n", "the first line must be a header"),
        ("open_time,open,high,low,close\n", "missing column(s) volume"),
        ("open_time,open,high,low,close,volume,vwap\n", "unknown column 'vwap'"),
        ("open_time,open,open,high,low,close,volume\n", "column 'open' appears twice"),
    ],
)
def test_missing_or_bad_header_is_one_clear_error(text, message):
    rows, errors = parse(text + "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n")
    assert rows == []
    assert len(errors) == 1
    assert message in errors[0].message


@pytest.mark.parametrize("text", ["", "\n\n", b""])
def test_empty_file_is_one_clear_error(text):
    message = "the file is empty; it needs a header line and candles"
    assert parse(text) == ([], [CsvError(1, message)])


def test_line_numbers_count_physical_lines_including_blank_ones():
    _, errors = parse(HEADER + "\n\n2024-01-01T00:00:00Z,1,2,0.5,1.5,-1\n")
    assert errors[0].line == 4


def test_write_iso_and_ms_formats():
    rows = [CandleRow(T0, 1.0, 2.0, 0.5, 1.5, 10.0), CandleRow(T0 + MIN, 0.1, 0.3, 0.1, 0.2, 0.0)]
    out = io.StringIO()
    assert write_candles_csv(rows, out) == 2
    assert out.getvalue() == (
        HEADER
        + "2024-01-01T00:00:00Z,1.0,2.0,0.5,1.5,10.0\n"
        + "2024-01-01T00:01:00Z,0.1,0.3,0.1,0.2,0.0\n"
    )
    out = io.StringIO()
    write_candles_csv(rows, out, time_format="ms")
    assert out.getvalue().splitlines()[1] == f"{T0},1.0,2.0,0.5,1.5,10.0"
    with pytest.raises(ValueError, match="time_format must be 'iso' or 'ms'"):
        write_candles_csv(rows, io.StringIO(), time_format="seconds")


def test_write_accepts_numpy_values_and_writes_plain_numbers():
    rows = [(np.int64(T0), np.float64(1.0), np.float64(2.0), np.float64(0.5), np.float64(1.5),
             np.float64(3.0), np.float64(4.5))]
    out = io.StringIO()
    write_candles_csv(rows, out)
    assert out.getvalue().splitlines()[1] == "2024-01-01T00:00:00Z,1.0,2.0,0.5,1.5,3.0,4.5"


def test_open_time_helpers_round_trip_milliseconds():
    assert format_open_time(T0 + 1) == "2024-01-01T00:00:00.001Z"
    assert parse_open_time("2024-01-01T00:00:00.001Z") == T0 + 1
    assert parse_open_time(" 2023-12-31T19:00:00-05:00 ") == T0
    with pytest.raises(ValueError, match="fraction of a millisecond"):
        parse_open_time("2024-01-01T00:00:00.0001Z")


# -- round trip -----------------------------------------------------------------------------

finite = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)
volume = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)


@st.composite
def candle_rows(draw):
    timeframe = draw(st.sampled_from(TIMEFRAMES))
    step = TIMEFRAME_MS[timeframe]
    first = draw(st.integers(1_300_000_000_000 // step, 4_000_000_000_000 // step))
    offsets = draw(st.lists(st.integers(0, 100_000), unique=True, max_size=40))
    with_quote = draw(st.booleans())
    rows = []
    for k in offsets:
        o, c, extra_low, extra_high = (draw(finite) for _ in range(4))
        low = min(o, c, extra_low)
        high = max(o, c, extra_high)
        q = draw(st.one_of(st.none(), volume)) if with_quote else None
        rows.append(CandleRow((first + k) * step, o, high, low, c, draw(volume), q))
    return timeframe, rows


def bits(rows):
    """Rows with every float as its exact bit pattern (so -0.0 != 0.0, unlike ==)."""
    def b(x):
        return x if x is None or isinstance(x, int) else struct.pack("<d", x)

    return [tuple(b(x) for x in r) for r in rows]


@settings(max_examples=200, deadline=None)
@given(candle_rows(), st.sampled_from(["iso", "ms"]))
def test_parse_of_write_gives_back_the_same_rows_bit_for_bit(data, time_format):
    timeframe, rows = data
    out = io.StringIO()
    write_candles_csv(rows, out, time_format=time_format)
    parsed, errors = parse_candles_csv(out.getvalue(), timeframe)
    assert errors == []
    assert bits(parsed) == bits(rows)
