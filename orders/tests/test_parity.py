"""Paper trading predicts the backtest: the same candles replayed bar by bar through
evaluation, paper execution and the exit guard give the backtester's trades."""

from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command

from orders.models import Order, Position
from orders.parity import replay
from orders.tests.conftest import MINUTE, T0, store
from strategies.models import Signal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def walk(symbol):
    rng = np.random.default_rng(3)
    closes = 50_000_000 * np.exp(np.cumsum(rng.normal(0, 0.004, 300)))
    store(symbol, closes.tolist(), spread=0.002)
    return closes


@pytest.mark.parametrize(
    "risk",
    [
        {},
        {"stop_loss_pct": Decimal("0.5"), "take_profit_pct": Decimal("1")},
        {"trailing_stop_pct": Decimal("0.6")},
    ],
    ids=["signals-only", "stop-and-target", "trailing"],
)
def test_replay_gives_the_backtesters_trades(symbol, paper, make_config, walk, risk):
    config = make_config(
        paper, name="rsi", strategy="rsi",
        params={"period": 14, "oversold": 40, "overbought": 60}, **risk,
    )
    report = replay(config, T0, T0 + 300 * MINUTE)
    assert report.bars == 300
    assert len(report.backtest_trades) >= 3
    assert report.mismatches == []
    reasons = {t["reason"] for t in report.paper_trades}
    if risk.get("stop_loss_pct"):
        assert {"stop_loss", "take_profit"} & reasons
    if risk.get("trailing_stop_pct"):
        assert "trailing_stop" in reasons
    # Rolled back: the user's data is untouched.
    assert not Order.objects.exists() and not Position.objects.exists()
    assert not Signal.objects.exists()


def test_parity_command_reports_success(symbol, paper, make_config, walk, capsys):
    config = make_config(
        paper, name="rsi", strategy="rsi", params={"period": 14, "oversold": 40, "overbought": 60}
    )
    call_command(
        "parity", "--config", str(config.pk), "--start", "2026-01-01T00:00",
        "--end", "2026-01-01T05:00",
    )
    assert "parity: same trades" in capsys.readouterr().out


def test_parity_with_no_trades_on_either_side_says_nothing_was_compared(
    symbol, paper, make_config, walk, capsys
):
    config = make_config(
        paper, name="rsi", strategy="rsi", params={"period": 14, "oversold": 1, "overbought": 99}
    )
    call_command(
        "parity", "--config", str(config.pk), "--start", "2026-01-01T00:00",
        "--end", "2026-01-01T05:00",
    )
    out = capsys.readouterr().out
    assert "backtest 0 trade(s), paper 0 trade(s)" in out
    assert "same trades" not in out and "nothing was compared" in out


@pytest.mark.parametrize("cash", ["abc", "NaN", "-5", "1e999999"])
def test_parity_refuses_a_cash_that_is_not_an_amount(symbol, paper, make_config, cash):
    from django.core.management import CommandError

    config = make_config(paper)
    with pytest.raises(CommandError, match="--cash must be"):
        call_command(
            "parity", "--config", str(config.pk), "--start", "2026-01-01T00:00",
            "--end", "2026-01-01T05:00", "--cash", cash,
        )
