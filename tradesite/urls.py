from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from orders import performance_views
from orders import views as dashboard
from tradesite import api as api_views
from tradesite import health, views

admin.site.site_header = "tradesite"
admin.site.site_title = "tradesite admin"
admin.site.index_title = "Trading administration"

urlpatterns = [
    path("health", health.health, name="health"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's): the shell's icon.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("strategies/", include("strategies.urls")),
    path("markets/", views.markets, name="markets"),
    path("alerts/", include("alerts.urls")),
    path("chart/<slug:venue>/<slug:symbol>/", views.chart, name="chart"),
    # The JSON API (tradesite.api): the orders router, the candles (pages and scripts),
    # /api/openapi.json and /api/docs.
    path("alerts/telegram/", include("alerts.telegram.urls")),
    path("api/", api_views.urls()),
    re_path(r"^api/", api_views.not_found),
    path("logout/", auth_views.LogoutView.as_view(next_page="admin:login"), name="logout"),
    path("", dashboard.dashboard, name="home"),
    path(
        "dashboard/configs/<int:pk>/toggle",
        dashboard.toggle_config,
        name="dashboard-toggle-config",
    ),
    path("dashboard/kill-switch", dashboard.kill_switch, name="dashboard-kill-switch"),
    path("dashboard/trades.csv", performance_views.trades_csv, name="dashboard-trades-csv"),
    path(
        "dashboard/configs/<int:pk>/backtest",
        performance_views.run_config_backtest,
        name="dashboard-config-backtest",
    ),
]
