"""Per-user isolation in the admin, shared by every app's ModelAdmins.

A staff user who is not a superuser sees and edits only rows they own: the changelist, the
change view (another user's id is "not found"), list_editable and actions (they work on the
filtered queryset), and foreign-key choices (a crafted POST naming another user's account fails
form validation). New rows get the requesting user as owner.

Shared rows (venues, symbols, candles, screens) are the same for everyone, but a filter in the
URL can reach through a relation into owned rows: ``/admin/markets/symbol/?strategy_configs=4``
listed the symbol of another user's config 4, ``?orders=2`` the symbol of their order 2.
:class:`SharedAdminMixin` refuses, for a non-superuser, any URL lookup that passes through a
relation into a model they cannot list in full; Django answers such a lookup as any other
disallowed one (400).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db.models.constants import LOOKUP_SEP


class OwnedAdminMixin:
    #: Lookup from this model to its owning user.
    owner_path: str = "owner"
    #: Foreign keys whose choices are limited to the user's own rows: field -> owner lookup on
    #: the related model.
    owned_foreign_keys: dict[str, str] = {}

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{self.owner_path: request.user})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        lookup = self.owned_foreign_keys.get(db_field.name)
        if lookup and not request.user.is_superuser:
            kwargs["queryset"] = db_field.related_model._default_manager.filter(
                **{lookup: request.user}
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if self.owner_path == "owner" and not request.user.is_superuser:
            exclude.append("owner")
        return exclude

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if not request.user.is_superuser:
            filters = [f for f in filters if not (isinstance(f, str) and f.endswith("owner"))]
        return filters

    def get_list_display(self, request):
        display = list(super().get_list_display(request))
        if not request.user.is_superuser:
            display = [d for d in display if d != "owner"]
        return display

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if self.owner_path != "owner" or request.user.is_superuser:
            return form
        user = request.user

        class OwnedForm(form):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                if self.instance.owner_id is None:
                    # Set before validation so model.clean() can check per-owner uniqueness.
                    self.instance.owner = user

        OwnedForm.__name__ = form.__name__
        return OwnedForm

    def save_model(self, request, obj, form, change):
        if self.owner_path == "owner" and getattr(obj, "owner_id", None) is None:
            obj.owner = request.user
        super().save_model(request, obj, form, change)


class SharedAdminMixin:
    """For admins of rows every user shares: URL filters of non-superusers may cross relations
    only into models that are public to them, i.e. registered on this admin site with an admin
    that is not per-owner (:class:`OwnedAdminMixin`) and that they may view. Every other
    relation (owned rows, users, unregistered models) is refused."""

    def lookup_allowed(self, lookup, value, request=None):
        if (
            request is not None
            and not request.user.is_superuser
            and self.private_model_reached(lookup, request) is not None
        ):
            return False
        return super().lookup_allowed(lookup, value, request)

    def private_model_reached(self, lookup: str, request):
        """The first model along ``lookup`` that is not public to the user, or None."""
        model = self.model
        for part in lookup.split(LOOKUP_SEP):
            try:
                field = model._meta.get_field(part)
            except FieldDoesNotExist:
                return None  # the rest are transforms and lookups (``__in``, ``__gte``...)
            if not field.is_relation:
                return None
            model = field.related_model
            if model is None or not self.is_public_model(model, request):
                return model or field
        return None

    def is_public_model(self, model, request) -> bool:
        model_admin = self.admin_site._registry.get(model)
        return (
            model_admin is not None
            and not isinstance(model_admin, OwnedAdminMixin)
            and model_admin.has_view_or_change_permission(request)
        )


class ReadOnlyAdminMixin:
    """Rows written only by services (orders, fills, candles...): viewable, not editable here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


class OwnedModelAdmin(OwnedAdminMixin, admin.ModelAdmin):
    pass
