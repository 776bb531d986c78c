from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

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
    path("api/candles", views.api_candles, name="api_candles"),
    path("logout/", auth_views.LogoutView.as_view(next_page="admin:login"), name="logout"),
    # The dashboard takes "/" when the trading issue lands; until then the admin is the product.
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False), name="home"),
]
