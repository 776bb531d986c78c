"""The JSON API's alert endpoints (``/api/alerts/...``): the caller's own rules, channels and
notification history. A django-ninja ``Router`` mounted by ``tradesite.api``; bodies are
validated by pydantic for shape and by the same forms as the page for meaning
(``alerts.forms``), so a rule or channel the page refuses is refused here with the same
message. Another user's id answers 404, like one that does not exist. A channel's target is
write-only: answers carry ``target_hint`` only."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse, JsonResponse
from ninja import Query, Router
from ninja.errors import HttpError
from pydantic import BaseModel as Schema
from pydantic import Field

from alerts import delivery, targets
from alerts.forms import OwnChannelForm, RuleForm
from alerts.models import AlertRule, Channel, Notification
from orders.api_auth import TokenOrSession
from orders.api_schemas import MAX_ID, Id

router = Router(auth=TokenOrSession(), tags=["alerts"])


class RuleIn(Schema):
    name: str = Field(max_length=100)
    kind: str = Field(max_length=32)
    symbol: str | None = Field(None, max_length=100, description='"venue:CODE", e.g. "sim:KRW-BTC"')
    params: dict[str, Any] = Field(default_factory=dict)
    # Ids as the database can hold them (a 2**63 reached the query and overflowed SQLite).
    channels: list[Id] = Field(default_factory=list, max_length=100)
    cooldown_s: int = Field(0, ge=0)
    is_active: bool = True


class ChannelIn(Schema):
    name: str = Field(max_length=100)
    kind: str = Field(max_length=16)
    target: str = Field("", max_length=2000, description="write-only; blank keeps the stored one")
    is_active: bool = True


class HistoryQuery(Schema):
    limit: int = Field(50, ge=1, le=500)
    status: str | None = Field(None, max_length=16)


def rule_out(rule: AlertRule) -> dict:
    return {"id": rule.pk, "name": rule.name, "kind": rule.kind,
            "symbol": f"{rule.symbol.exchange.slug}:{rule.symbol.code}" if rule.symbol else None,
            "params": rule.params, "channels": [c.pk for c in rule.channels.all()],
            "cooldown_s": rule.cooldown_s, "is_active": rule.is_active,
            "last_fired_at": rule.last_fired_at}


def channel_out(channel: Channel) -> dict:
    return {"id": channel.pk, "name": channel.name, "kind": channel.kind,
            "target_hint": targets.hint(channel.kind, channel.target),
            "is_active": channel.is_active, "failing": channel.failing,
            "last_error": channel.last_error}


def _invalid(form) -> JsonResponse:
    detail = [{"field": "target" if f == "new_target" else f, "message": str(m)}
              for f, messages in form.errors.items() for m in messages]
    return JsonResponse({"error": "; ".join(f"{d['field']}: {d['message']}" for d in detail),
                         "detail": detail}, status=400)


def _own(model, user, pk: int):
    obj = model.objects.filter(owner=user, pk=pk).first() if 0 < pk <= MAX_ID else None
    if obj is None:
        raise HttpError(404, f"no {model._meta.verbose_name} with id {pk}")
    return obj


def _save_rule(request, payload: RuleIn, rule: AlertRule | None, status: int):
    data = {"name": payload.name, "kind": payload.kind, "symbol": payload.symbol or "",
            "params": json.dumps(payload.params, default=str),
            "channels": [str(c) for c in payload.channels], "cooldown_s": payload.cooldown_s,
            "is_active": payload.is_active}
    form = RuleForm(data, instance=rule, owner=request.auth)
    if not form.is_valid():
        return _invalid(form)
    return JsonResponse(rule_out(form.save()), status=status)


def _save_channel(request, payload: ChannelIn, channel: Channel | None, status: int):
    data = {"name": payload.name, "kind": payload.kind, "new_target": payload.target,
            "is_active": payload.is_active}
    form = OwnChannelForm(data, instance=channel, owner=request.auth)
    if not form.is_valid():
        return _invalid(form)
    return JsonResponse(channel_out(form.save()), status=status)


def _rules(user):
    return (AlertRule.objects.filter(owner=user).select_related("symbol__exchange")
            .prefetch_related("channels"))


@router.get("/alerts/rules", url_name="alert-rules", summary="Your alert rules")
def list_rules(request):
    return {"rules": [rule_out(r) for r in _rules(request.auth)]}


@router.post("/alerts/rules", url_name="alert-rule-create", summary="Create an alert rule")
def create_rule(request, payload: RuleIn):
    return _save_rule(request, payload, None, 201)


@router.get("/alerts/rules/{pk}", url_name="alert-rule", summary="One of your alert rules")
def get_rule(request, pk: int):
    return rule_out(_own(AlertRule, request.auth, pk))


@router.put("/alerts/rules/{pk}", url_name="alert-rule-update", summary="Replace a rule")
def update_rule(request, pk: int, payload: RuleIn):
    return _save_rule(request, payload, _own(AlertRule, request.auth, pk), 200)


@router.delete("/alerts/rules/{pk}", url_name="alert-rule-delete", summary="Delete a rule")
def delete_rule(request, pk: int):
    _own(AlertRule, request.auth, pk).delete()
    return HttpResponse(status=204)


@router.get("/alerts/channels", url_name="alert-channels", summary="Your alert channels")
def list_channels(request):
    return {"channels": [channel_out(c) for c in Channel.objects.filter(owner=request.auth)]}


@router.post("/alerts/channels", url_name="alert-channel-create", summary="Create a channel")
def create_channel(request, payload: ChannelIn):
    return _save_channel(request, payload, None, 201)


@router.put("/alerts/channels/{pk}", url_name="alert-channel-update",
            summary="Replace a channel (a blank target keeps the stored one)")
def update_channel(request, pk: int, payload: ChannelIn):
    return _save_channel(request, payload, _own(Channel, request.auth, pk), 200)


@router.delete("/alerts/channels/{pk}", url_name="alert-channel-delete",
               summary="Delete a channel")
def delete_channel(request, pk: int):
    _own(Channel, request.auth, pk).delete()
    return HttpResponse(status=204)


@router.post("/alerts/channels/{pk}/test", url_name="alert-channel-test",
             summary="Send a test notification now")
def test_channel(request, pk: int):
    outcome = delivery.send_test(_own(Channel, request.auth, pk))
    return {"status": outcome.status, "error": outcome.error}


@router.get("/alerts/notifications", url_name="alert-notifications",
            summary="Your notification history, newest first")
def history(request, query: Query[HistoryQuery]):
    qs = Notification.objects.filter(owner=request.auth).select_related("channel")
    if query.status:
        qs = qs.filter(status=query.status)
    return {"notifications": [
        {"id": n.pk, "title": n.title, "body": n.body, "status": n.status,
         "channel": n.channel_id, "channel_name": n.channel.name, "rule": n.rule_id,
         "attempts": n.attempts, "created_at": n.created_at, "sent_at": n.sent_at,
         "last_error": n.last_error} for n in qs[:query.limit]]}
