"""The five original bot designs (issue 19) as demo configs, each on a paper account of its own
(so no design trades another's position): ``bootstrap_demo`` seeds them on the simulator's
venues, and ``tradesite/tests/test_bot_designs.py`` types the same designs into the admin and
trades them on the simulator's candles.

* Bithumb Bollinger (KRW spot, mean reversion to the middle band);
* Upbit ensemble (trend, momentum, swing, scalping, day and price-action votes, weighted),
  re-optimized every night (``auto_apply_optimized``: the "Optimize strategies" job at 00:05);
* Binance USDⓈ-M futures Bollinger with the realized-volatility filter, exits only at +0.16 %
  take-profit / −0.11 % stop-loss (``exit``: none) at 10× leverage;
* Binance MACD + turtle: ATR units (``atr_unit`` sizing) and pyramiding;
* Upbit volatility breakout with Kelly sizing.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

D = Decimal


@dataclasses.dataclass(frozen=True)
class Design:
    key: str
    name: str
    venue: str  # demo venue slug
    symbol: str
    quote: str
    funds: Decimal
    strategy: str
    params: dict
    timeframe: str
    sizing_method: str
    sizing_params: dict
    leverage: int = 1
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    trailing_stop_pct: Decimal | None = None
    auto_apply_optimized: bool = False

    @property
    def account_label(self) -> str:
        return f"{self.name} (paper)"


DESIGNS = [
    Design(
        key="bithumb_bollinger", name="Bithumb Bollinger (KRW-BTC 5m)", venue="sim-bithumb",
        symbol="KRW-BTC", quote="KRW", funds=D("10000000"), strategy="bollinger",
        params={"period": 20, "k": 2.0, "exit": "middle"}, timeframe="5m",
        sizing_method="fraction", sizing_params={"fraction": 0.3},
        stop_loss_pct=D("2"),
    ),
    Design(
        key="ensemble", name="Upbit ensemble (KRW-BTC 1m)", venue="sim", symbol="KRW-BTC",
        quote="KRW", funds=D("10000000"), strategy="ensemble",
        params={"w_trend": 1.0, "w_momentum": 1.0, "w_swing": 1.0, "w_scalping": 0.5,
                "w_day": 1.0, "w_price_action": 1.5, "threshold": 0.2,
                "day_offset_hours": 9.0},
        timeframe="1m", sizing_method="fraction", sizing_params={"fraction": 0.5},
        stop_loss_pct=D("1.5"), auto_apply_optimized=True,
    ),
    Design(
        key="futures_bollinger", name="Binance futures Bollinger 10x (BTCUSDT 1m)",
        venue="sim-futures", symbol="BTCUSDT", quote="USDT", funds=D("10000"),
        strategy="bollinger",
        params={"period": 20, "k": 2.0, "vol_filter": True, "vol_window": 20, "exit": "none"},
        timeframe="1m", sizing_method="fraction", sizing_params={"fraction": 0.5}, leverage=10,
        stop_loss_pct=D("0.11"), take_profit_pct=D("0.16"),
    ),
    Design(
        key="macd_turtle", name="Binance MACD turtle (BTCUSDT 1m)", venue="sim-binance",
        symbol="BTCUSDT", quote="USDT", funds=D("10000"), strategy="macd_turtle",
        params={"add_atr": 1.0, "trial_units": 0.5, "confirm_units": 1.5, "max_units": 4.0},
        timeframe="1m", sizing_method="atr_unit", sizing_params={"risk_pct": 0.03,
                                                                  "atr_period": 20},
    ),
    Design(
        key="volatility_breakout", name="Upbit volatility breakout Kelly (KRW-BTC 1h)",
        venue="sim", symbol="KRW-BTC", quote="KRW", funds=D("10000000"),
        strategy="volatility_breakout", params={"k_value": 0.5, "utc_offset_hours": 9.0},
        timeframe="1h", sizing_method="kelly",
        sizing_params={"win_rate": 0.55, "payoff": 1.5, "fraction": 0.5},
    ),
]


def by_key(key: str) -> Design:
    return next(d for d in DESIGNS if d.key == key)


def seed(owner, report) -> None:
    """Each design's paper account (funded) and config, active, on the demo's simulated venues;
    only what is missing. A design whose venue or symbol the demo lacks is skipped and said."""
    from markets.models import Account, Balance, Exchange, Symbol
    from strategies import registry
    from strategies.models import StrategyConfig

    available = set(registry.names())
    for design in DESIGNS:
        if StrategyConfig.objects.filter(owner=owner, name=design.name).exists():
            continue
        symbol = Symbol.objects.filter(exchange__slug=design.venue, code=design.symbol).first()
        if symbol is None or design.strategy not in available:
            report.skipped.append(f"config {design.name!r}: {design.venue}:{design.symbol} "
                                  f"or strategy {design.strategy} missing")
            continue
        account, created = Account.objects.get_or_create(
            owner=owner, label=design.account_label,
            defaults={"exchange": Exchange.objects.get(slug=design.venue),
                      "mode": Account.Mode.PAPER, "quote_asset": design.quote},
        )
        if created:
            Balance.objects.create(account=account, asset=design.quote, free=design.funds)
            report.created.append(
                f"paper account {design.account_label} with {design.funds:,} {design.quote}")
        config = StrategyConfig(
            owner=owner, name=design.name, strategy=design.strategy, params=dict(design.params),
            symbol=symbol, timeframe=design.timeframe, account=account, is_active=True,
            leverage=design.leverage, stop_loss_pct=design.stop_loss_pct,
            take_profit_pct=design.take_profit_pct, trailing_stop_pct=design.trailing_stop_pct,
            sizing_method=design.sizing_method, sizing_params=dict(design.sizing_params),
            auto_apply_optimized=design.auto_apply_optimized,
        )
        config.full_clean()
        config.save()
        report.created.append(f"config {design.name}")
