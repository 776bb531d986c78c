"""The parity command on hostile input: bad times, cash and spans are command errors naming
the option or the limit (BACKTEST_MAX_DAYS), never a traceback."""

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("args, message", [
    (["--start", "99999999999999999999", "--end", "2026-01-02"], "is not a date"),
    (["--start", "99999-01-01", "--end", "2026-01-02"], "is not a date"),
    (["--start", "2026-01-01", "--end", "9999999999999999"], "is not a date"),
    (["--start", "0001-01-01", "--end", "9999-12-30"], "BACKTEST_MAX_DAYS"),
    (["--start", "2026-01-01", "--end", "2026-01-02", "--cash", "abc"], "--cash must be"),
    (["--start", "2026-01-01", "--end", "2026-01-02", "--cash", "-5"], "--cash must be"),
    (["--start", "2026-01-01", "--end", "2026-01-02", "--cash", "NaN"], "--cash must be"),
], ids=["digits", "year-99999", "end-ms-past-9999", "span", "cash-text", "cash-negative",
        "cash-nan"])
def test_bad_parity_options_are_command_errors(paper, make_config, args, message):
    config = make_config(paper, name="rsi", strategy="rsi")
    with pytest.raises(CommandError, match=message):
        call_command("parity", "--config", str(config.pk), *args)
