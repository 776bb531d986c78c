from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from tradesite import health

admin.site.site_header = "tradesite"
admin.site.site_title = "tradesite admin"
admin.site.index_title = "Trading administration"

urlpatterns = [
    path("health", health.health, name="health"),
    path("admin/", admin.site.urls),
    path("strategies/", include("strategies.urls")),
    # The dashboard takes "/" when the trading issue lands; until then the admin is the product.
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False), name="home"),
]
