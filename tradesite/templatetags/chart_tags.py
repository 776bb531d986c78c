"""Template tags of the chart page."""

from __future__ import annotations

from itertools import groupby

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

register = template.Library()


@register.simple_tag
def symbol_options(picker: list[dict], venue: str, code: str):
    """The symbol picker's ``<optgroup>``s (one per venue), the current symbol selected.

    Built in one pass here: a venue following its whole market puts hundreds of symbols in the
    picker, and the template's regroup and loop were most of the page's render time at 500."""
    groups = []
    for venue_name, rows in groupby(picker, key=lambda m: m["venue_name"]):
        options = format_html_join("", '<option value="{}"{}>{}</option>', (
            (m["url"], mark_safe(" selected") if (m["venue"], m["symbol"]) == (venue, code)
             else "", m["symbol"]) for m in rows))
        groups.append(format_html('<optgroup label="{}">{}</optgroup>', venue_name, options))
    return mark_safe("".join(groups))  # each part escaped by format_html above
