import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from markets import fields
from markets.models import Account

pytestmark = pytest.mark.django_db


def raw_credentials(account_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key, api_secret FROM markets_account WHERE id = %s", [account_id]
        )
        return cursor.fetchone()


def test_api_credentials_are_encrypted_at_rest(make_trader, make_account):
    account = make_account(make_trader("u"), api_key="my-access-key", api_secret="my-secret")
    stored_key, stored_secret = raw_credentials(account.pk)
    assert stored_key.startswith("fernet:") and stored_secret.startswith("fernet:")
    assert "my-access-key" not in stored_key and "my-secret" not in stored_secret
    again = Account.objects.get(pk=account.pk)
    assert (again.api_key, again.api_secret) == ("my-access-key", "my-secret")


def test_rotated_keys_still_decrypt_old_values(settings, make_trader, make_account):
    account = make_account(make_trader("u"), api_key="k", api_secret="s")
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    assert Account.objects.get(pk=account.pk).api_secret == "s"


def test_wrong_key_fails_loudly_instead_of_returning_garbage(settings, make_trader, make_account):
    account = make_account(make_trader("u"), api_key="k", api_secret="s")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEY"):
        Account.objects.get(pk=account.pk)


def test_empty_credentials_stay_empty(make_trader, make_account):
    account = make_account(make_trader("u"))
    assert raw_credentials(account.pk) == ("", "")
    assert not Account.objects.get(pk=account.pk).has_keys


def test_encrypt_round_trip():
    assert fields.decrypt(fields.encrypt("секрет")) == "секрет"
