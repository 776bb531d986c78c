"""The admin site: Django's, with hostile-input handling for every registered ModelAdmin.

``settings.INSTALLED_APPS`` names :class:`AdminConfig` instead of ``django.contrib.admin``, so
``admin.site`` (and ``@admin.register``) is a :class:`TradesiteAdminSite`. Registering wraps
each admin class with :class:`markets.admin_safety.HostileInputAdminMixin`: the project's
admins and third-party ones (users, groups, django-celery-beat's tasks) alike.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig

from markets.admin_safety import HostileInputAdminMixin


class TradesiteAdminSite(admin.AdminSite):
    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, HostileInputAdminMixin):
            admin_class = type(admin_class.__name__, (HostileInputAdminMixin, admin_class), {
                "__module__": admin_class.__module__, "__doc__": admin_class.__doc__,
            })
        super().register(model_or_iterable, admin_class, **options)


class AdminConfig(DjangoAdminConfig):
    default_site = "tradesite.admin_site.TradesiteAdminSite"
