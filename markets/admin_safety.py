"""Hostile input on admin lists and forms: a message, never a 500.

Django's changelist turns most bad query-string filters into its "bad filter" page (``?e=1``),
but only errors raised while the filter is *built*: ``?created_at__year=99999`` builds fine and
fails when the SQL is compiled (the year has no datetime), inside the template, as a 500. An
action posted with ``_selected_action=abc`` fails the same way. And ``forms.JSONField`` parses
with ``json.loads``: 50,000 ``[`` are a ``RecursionError``.

:class:`HostileInputAdminMixin` fixes the three for any ``ModelAdmin``: the changelist compiles
its query up front (a failure is a bad filter), action ids are checked against the primary key
field (a bad one is a message naming it), and JSON model fields get
:class:`BoundedJSONFormField` (parsing through :func:`markets.jsonlimits.loads`).
``tradesite.admin_site`` applies it to every registered ``ModelAdmin`` (third-party ones
included), so no admin has to remember it.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import EmptyResultSet, FullResultSet, ValidationError
from django.db import models

from markets.jsonlimits import JsonLimitError, loads


class BoundedJSONFormField(forms.JSONField):
    """``forms.JSONField`` parsing through :func:`loads` (size and depth bounded): what the
    admin uses for every JSON model field."""

    default_error_messages = {"invalid": "%(message)s"}

    def to_python(self, value):
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, (list, dict, int, float, forms.fields.JSONString)):
            return value
        try:
            converted = loads(value, what="This field")
        except JsonLimitError as exc:
            raise ValidationError(
                self.error_messages["invalid"], code="invalid",
                params={"message": str(exc), "value": value},
            ) from None
        if isinstance(converted, str):
            return forms.fields.JSONString(converted)
        return converted

    def bound_data(self, data, initial):
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return loads(data)
        except JsonLimitError:
            return forms.fields.InvalidJSONInput(data)


def _compiles(queryset) -> None:
    """Compile ``queryset``'s SQL now; a value the database cannot take (a year beyond 9999, a
    number too large) is a bad filter, reported as such."""
    try:
        _sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except (EmptyResultSet, FullResultSet):
        return  # the query is valid (it matches nothing or everything)
    except (ValueError, OverflowError, TypeError, ValidationError, ArithmeticError) as exc:
        raise IncorrectLookupParameters(exc) from exc
    # Django bounds an integer in exact and range lookups but not in ``__in`` lists
    # (``?id__in=10**20``): the driver would fail on it at execution (SQLite's OverflowError).
    for value in params:
        if isinstance(value, int) and not isinstance(value, bool) and not (
                -(2**63) <= value < 2**63):
            raise IncorrectLookupParameters(f"{value} is out of range for a database integer")


class HostileInputAdminMixin:
    """See the module docstring. Put it before ``admin.ModelAdmin`` in the bases."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.formfield_overrides = {
            models.JSONField: {"form_class": BoundedJSONFormField},
            **self.formfield_overrides,
        }

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)

        class CheckedChangeList(base):
            def get_queryset(self, request, exclude_parameters=None):
                try:  # the date hierarchy builds datetimes from the URL (year -10**20)
                    queryset = super().get_queryset(request, exclude_parameters)
                except (OverflowError, ValueError, ArithmeticError) as exc:
                    raise IncorrectLookupParameters(exc) from exc
                _compiles(queryset)
                return queryset

        CheckedChangeList.__name__ = base.__name__
        return CheckedChangeList

    def response_action(self, request, queryset):
        pk = self.model._meta.pk
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                pk.clean(value, None)
            except ValidationError:
                self.message_user(
                    request,
                    f"{value[:40]!r} is not a valid id of a {self.model._meta.verbose_name}; "
                    "no action was taken.",
                    messages.ERROR,
                )
                return None  # the changelist redirects back to itself with the message
        return super().response_action(request, queryset)
