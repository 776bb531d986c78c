"""``manage.py simexchange``: the Django shell over the simulator's program takes its flags."""

from __future__ import annotations

from markets.management.commands.simexchange import Command
from simulator.cli import config_from


def test_the_management_command_takes_the_same_flags():
    parser = Command().create_parser("manage.py", "simexchange")
    options = vars(
        parser.parse_args(
            [
                "--upbit-port",
                "9101",
                "--venues",
                "upbit",
                "--replay",
                "KRW-BTC=/tmp/x.csv",
                "--order-delay",
                "2",
            ]
        )
    )
    config = config_from(options)
    assert (config.upbit_port, config.venues, config.replay) == (
        9101,
        ("upbit",),
        {"KRW-BTC": "/tmp/x.csv"},
    )
    assert config.faults.order_delay_s == 2.0 and config.faults.rate_limits is True
