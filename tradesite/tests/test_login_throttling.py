"""Login throttling (django-axes): the reproduction was 40 wrong passwords in 10 s, all
answered, and then the right password accepted. Now a username is locked out from an address
after LOGIN_FAILURE_LIMIT failures, the right password included, and every failure is logged
with the client's address."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user(
        "carol", password="right-password-1", is_staff=True
    )


def attempt(client: Client, password: str, address: str = "203.0.113.7", username="carol"):
    return client.post(
        LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_after_the_limit_the_right_password_is_refused_and_failures_are_logged(staff, caplog):
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    with caplog.at_level(logging.WARNING, logger="axes"):
        for _ in range(40):
            response = attempt(client, "wrong")
            assert response.status_code in (200, 429)
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()

    refused = attempt(client, "right-password-1")
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    failures = [r.getMessage() for r in caplog.records if "login failure" in r.getMessage()]
    assert len(failures) >= limit
    assert all('ip_address: "203.0.113.7"' in line for line in failures)
    assert any("Locking out" in r.getMessage() and "203.0.113.7" in r.getMessage()
               for r in caplog.records)


def test_the_lockout_counts_per_username_and_address(staff):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(Client(), "wrong")
    assert attempt(Client(), "right-password-1").status_code == 429
    # The same user from another address, and before the limit, logs in.
    ok = attempt(Client(), "right-password-1", address="198.51.100.4")
    assert ok.status_code == 302 and ok["Location"] == "/admin/"


def test_a_success_before_the_limit_resets_the_count(staff):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(Client(), "wrong").status_code == 200
    assert attempt(Client(), "right-password-1").status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(Client(), "wrong").status_code == 200
    assert attempt(Client(), "right-password-1").status_code == 302


def test_force_login_still_works(staff):
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


def test_the_lockout_ends_after_the_cool_off(staff):
    from axes.models import AccessAttempt

    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(Client(), "wrong")
    assert attempt(Client(), "right-password-1").status_code == 429
    past = AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME
    AccessAttempt.objects.update(attempt_time=past)
    assert attempt(Client(), "right-password-1").status_code == 302


@pytest.mark.django_db(transaction=True)
async def test_the_lockout_holds_through_the_asgi_stack_the_web_process_runs():
    """The web process is ASGI (uvicorn): axes' middleware runs in its async form there."""
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    await sync_to_async(get_user_model().objects.create_user)(
        "erin", password="right-password-1", is_staff=True)
    client = AsyncClient(REMOTE_ADDR="203.0.113.8")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        await client.post(LOGIN, {"username": "erin", "password": "wrong"})
    refused = await client.post(LOGIN, {"username": "erin", "password": "right-password-1"})
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.content.decode()
