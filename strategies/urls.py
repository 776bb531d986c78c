"""Optimizer and screener pages. Included by ``tradesite/urls.py`` as
``path("strategies/", include("strategies.urls"))``."""

from django.urls import path

from strategies import views

app_name = "strategies"

urlpatterns = [
    path("screener/", views.screener, name="screener"),
    path("screener/activate/<int:symbol_id>/", views.activate_symbol, name="activate_symbol"),
    path("screener/top/", views.set_top_symbols, name="set_top_symbols"),
    path("optimizer/runs/", views.run_list, name="run_list"),
    path("optimizer/runs/start/", views.start_run, name="start_run"),
    path("optimizer/runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("optimizer/runs/<int:run_id>/apply/", views.apply_run, name="apply_run"),
    path("backtests/", views.backtest_list, name="backtest_list"),
    path("backtests/<int:run_id>/", views.backtest_detail, name="backtest_detail"),
    path("backtests/<int:run_id>.json", views.backtest_status, name="backtest_status"),
]
