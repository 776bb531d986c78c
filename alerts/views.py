"""The alerts page at ``/alerts/``: the user's own rules, channels and notification history.

Every object is looked up among the user's own (superusers too: the page is personal, like
the dashboard), so another user's id answers 404."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from alerts import delivery, targets
from alerts.forms import OwnChannelForm, RuleForm
from alerts.models import AlertRule, Channel, Notification

HISTORY = 50


def _page(request, rule_form=None, channel_form=None, status=200):
    user = request.user
    channels = list(Channel.objects.filter(owner=user))
    for channel in channels:
        channel.hint = targets.hint(channel.kind, channel.target)
    rules = list(AlertRule.objects.filter(owner=user).select_related("symbol__exchange")
                 .prefetch_related("channels"))
    for rule in rules:
        rule.params_text = json.dumps(rule.params or {})
    return render(request, "alerts/page.html", {
        "rules": rules,
        "channels": channels,
        "history": Notification.objects.filter(owner=user).select_related("channel")[:HISTORY],
        "rule_form": rule_form or RuleForm(owner=user, prefix="rule"),
        "channel_form": channel_form or OwnChannelForm(owner=user, prefix="channel"),
    }, status=status)


@login_required
def page(request):
    return _page(request)


@login_required
def rule_edit(request, pk: int | None = None):
    rule = get_object_or_404(AlertRule, pk=pk, owner=request.user) if pk else None
    form = RuleForm(request.POST or None, instance=rule, owner=request.user, prefix="rule")
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Rule “{saved.name}” saved.")
        return redirect("alerts")
    if request.method == "POST":
        return _page(request, rule_form=form, status=400) if rule is None else render(
            request, "alerts/edit.html", {"form": form, "what": "rule"}, status=400)
    return render(request, "alerts/edit.html", {"form": form, "what": "rule"})


@login_required
def channel_edit(request, pk: int | None = None):
    channel = get_object_or_404(Channel, pk=pk, owner=request.user) if pk else None
    form = OwnChannelForm(request.POST or None, instance=channel, owner=request.user,
                          prefix="channel")
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Channel “{saved.name}” saved.")
        return redirect("alerts")
    if request.method == "POST":
        return _page(request, channel_form=form, status=400) if channel is None else render(
            request, "alerts/edit.html", {"form": form, "what": "channel"}, status=400)
    return render(request, "alerts/edit.html", {"form": form, "what": "channel"})


@login_required
@require_POST
def rule_delete(request, pk: int):
    rule = get_object_or_404(AlertRule, pk=pk, owner=request.user)
    rule.delete()
    messages.success(request, f"Rule “{rule.name}” deleted.")
    return redirect("alerts")


@login_required
@require_POST
def channel_delete(request, pk: int):
    channel = get_object_or_404(Channel, pk=pk, owner=request.user)
    channel.delete()
    messages.success(request, f"Channel “{channel.name}” deleted.")
    return redirect("alerts")


@login_required
@require_POST
def channel_test(request, pk: int):
    channel = get_object_or_404(Channel, pk=pk, owner=request.user)
    outcome = delivery.send_test(channel)
    if outcome.status == "sent":
        messages.success(request, f"Test sent to {channel.name}.")
    else:
        messages.error(request, f"Test to {channel.name} failed: {outcome.error or outcome.status}"
                       + (" (retried automatically)" if outcome.status == "retry" else ""))
    return redirect("alerts")
