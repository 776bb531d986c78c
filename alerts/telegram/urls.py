from django.urls import path

from alerts.telegram import views

urlpatterns = [
    path("link", views.link, name="alerts-telegram-link"),
    path("unlink", views.unlink, name="alerts-telegram-unlink"),
]
