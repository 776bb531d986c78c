"""Spot configs stored with ``shorts: true`` (the strategies' default, filled in when the config
was saved) get ``shorts: false``: a spot position cannot be short, and a config on a spot symbol
now refuses shorts (only ``enter_short`` signals that were ignored anyway stop appearing)."""

from django.db import migrations


def shorts_off_on_spot(apps, schema_editor):
    StrategyConfig = apps.get_model("strategies", "StrategyConfig")
    for config in StrategyConfig.objects.filter(symbol__market_type="spot").only("params"):
        params = config.params
        if isinstance(params, dict) and params.get("shorts") is True:
            config.params = {**params, "shorts": False}
            config.save(update_fields=["params"])


class Migration(migrations.Migration):
    dependencies = [
        ("strategies", "0004_backtest_stage"),
    ]

    operations = [
        migrations.RunPython(shorts_off_on_spot, migrations.RunPython.noop),
    ]
