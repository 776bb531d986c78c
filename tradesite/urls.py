from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from orders import api
from orders import views as dashboard
from tradesite import health, views

admin.site.site_header = "tradesite"
admin.site.site_title = "tradesite admin"
admin.site.index_title = "Trading administration"

urlpatterns = [
    path("health", health.health, name="health"),
    path("admin/", admin.site.urls),
    path("strategies/", include("strategies.urls")),
    path("markets/", views.markets, name="markets"),
    path("chart/<slug:venue>/<slug:symbol>/", views.chart, name="chart"),
    # One candles endpoint for the pages (session) and scripts (API token).
    path("api/candles", views.api_candles, name="api_candles"),
    path("api/balances", api.balances, name="api-balances"),
    path("api/positions", api.positions, name="api-positions"),
    path("api/orders", api.orders, name="api-orders"),
    path("api/orders/<int:pk>/cancel", api.cancel_order, name="api-order-cancel"),
    path("api/signals", api.signals, name="api-signals"),
    path("api/configs", api.configs, name="api-configs"),
    path("api/configs/<int:pk>/activate", api.activate_config, name="api-config-activate"),
    path("api/configs/<int:pk>/deactivate", api.deactivate_config, name="api-config-deactivate"),
    path("api/kill-switch", api.kill_switch, name="api-kill-switch"),
    path("logout/", auth_views.LogoutView.as_view(next_page="admin:login"), name="logout"),
    path("", dashboard.dashboard, name="home"),
    path(
        "dashboard/configs/<int:pk>/toggle",
        dashboard.toggle_config,
        name="dashboard-toggle-config",
    ),
    path("dashboard/kill-switch", dashboard.kill_switch, name="dashboard-kill-switch"),
]
