from django.urls import path

from alerts import views

urlpatterns = [
    path("", views.page, name="alerts"),
    path("rules/new", views.rule_edit, name="alerts-rule-new"),
    path("rules/<int:pk>/edit", views.rule_edit, name="alerts-rule-edit"),
    path("rules/<int:pk>/delete", views.rule_delete, name="alerts-rule-delete"),
    path("channels/new", views.channel_edit, name="alerts-channel-new"),
    path("channels/<int:pk>/edit", views.channel_edit, name="alerts-channel-edit"),
    path("channels/<int:pk>/delete", views.channel_delete, name="alerts-channel-delete"),
    path("channels/<int:pk>/test", views.channel_test, name="alerts-channel-test"),
]
