"""Hostile input on admin lists and forms: a message, never a 500.

Django's changelist turns most bad query-string filters into its "bad filter" page (``?e=1``),
but only errors raised while the filter is *built*: ``?created_at__year=99999`` builds fine and
fails when the SQL is compiled (the year has no datetime), inside the template, as a 500. An
action posted with ``_selected_action=abc`` fails the same way. And ``forms.JSONField`` parses
with ``json.loads``: 50,000 ``[`` are a ``RecursionError``.

:class:`HostileInputAdminMixin` fixes the three for any ``ModelAdmin``: the changelist compiles
its query up front (a failure is a bad filter), action ids are checked against the primary key
field (a bad one is a message naming it), and JSON model fields get
:class:`markets.jsonlimits.BoundedJSONFormField`. ``tradesite.admin_site`` applies it to every
registered ``ModelAdmin`` (third-party ones included), so no admin has to remember it.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import EmptyResultSet, FullResultSet, ValidationError
from django.db import models

from markets.jsonlimits import BoundedJSONFormField


def _compiles(queryset) -> None:
    """Compile ``queryset``'s SQL now; a value the database cannot take (a year beyond 9999, a
    number too large) is a bad filter, reported as such."""
    try:
        queryset.query.get_compiler(using=queryset.db).as_sql()
    except (EmptyResultSet, FullResultSet):
        return  # the query is valid (it matches nothing or everything)
    except (ValueError, OverflowError, TypeError, ValidationError, ArithmeticError) as exc:
        raise IncorrectLookupParameters(exc) from exc


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
                queryset = super().get_queryset(request, exclude_parameters)
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
