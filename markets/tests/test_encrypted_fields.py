import json

import pytest
from cryptography.fernet import Fernet
from django.core import serializers
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from markets import fields
from markets.fields import CredentialsUnreadable, Sealed
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
    assert again.credentials() == ("my-access-key", "my-secret")
    assert again.credentials_state == "stored" and again.has_keys


def test_loaded_credentials_stay_sealed_until_asked_for(make_trader, make_account):
    account = make_account(make_trader("u"), api_key="my-access-key", api_secret="my-secret")
    again = Account.objects.get(pk=account.pk)
    assert isinstance(again.api_key, Sealed) and isinstance(again.api_secret, Sealed)
    assert "my-access-key" not in repr(again.api_key) + str(again.api_key)
    # Saving the row without touching the keys keeps them.
    again.label = "renamed"
    again.full_clean()
    again.save()
    assert Account.objects.get(pk=account.pk).credentials() == ("my-access-key", "my-secret")


def test_rotated_keys_still_decrypt_old_values(settings, make_trader, make_account):
    account = make_account(make_trader("u"), api_key="k", api_secret="s")
    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *old_keys]
    again = Account.objects.get(pk=account.pk)
    assert again.credentials() == ("k", "s")
    # A save re-encrypts under the newest key: the old key can then be dropped.
    again.save()
    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]
    assert Account.objects.get(pk=account.pk).credentials() == ("k", "s")


def test_wrong_key_is_a_state_of_the_account_not_garbage(settings, make_trader, make_account):
    account = make_account(make_trader("u"), api_key="k", api_secret="s")
    stored = raw_credentials(account.pk)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    again = Account.objects.get(pk=account.pk)  # loading never raises
    assert again.credentials_state == "unreadable" and not again.has_keys
    with pytest.raises(CredentialsUnreadable, match=r"enter them again.*FIELD_ENCRYPTION_KEY"):
        again.credentials()
    # Saving the row keeps what was stored (a restored key can still read it).
    again.halted = True
    again.save()
    assert raw_credentials(account.pk) == stored


def test_a_stored_value_that_was_never_encrypted_is_unreadable(make_trader, make_account):
    account = make_account(make_trader("u"))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE markets_account SET api_key = 'plain', api_secret = 'text' WHERE id = %s",
            [account.pk],
        )
    again = Account.objects.get(pk=account.pk)
    assert again.credentials_state == "unreadable"
    with pytest.raises(CredentialsUnreadable, match="not encrypted"):
        again.credentials()


def test_empty_credentials_stay_empty(make_trader, make_account):
    account = make_account(make_trader("u"))
    assert raw_credentials(account.pk) == ("", "")
    again = Account.objects.get(pk=account.pk)
    assert not again.has_keys and again.credentials_state == "none"
    assert again.credentials() == ("", "")


def test_serialized_rows_hold_tokens_and_load_back(make_trader, make_account):
    account = make_account(make_trader("u"), api_key="k-123", api_secret="s-456")
    dumped = serializers.serialize("json", Account.objects.filter(pk=account.pk))
    assert "k-123" not in dumped and "s-456" not in dumped
    assert json.loads(dumped)[0]["fields"]["api_key"].startswith("fernet:")
    Account.objects.filter(pk=account.pk).update(api_key="", api_secret="")
    for obj in serializers.deserialize("json", dumped):
        obj.save()
    assert Account.objects.get(pk=account.pk).credentials() == ("k-123", "s-456")


def test_encrypt_round_trip():
    assert fields.decrypt(fields.encrypt("секрет")) == "секрет"


@hsettings(max_examples=200, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.one_of(st.text(), st.text().map(lambda t: "fernet:" + t),
                        st.binary().map(lambda b: "fernet:" + Fernet(Fernet.generate_key())
                                        .encrypt(b).decode())))
def test_any_stored_text_loads_and_is_either_readable_or_unreadable(stored):
    """Whatever the column holds, loading never raises; revealing gives text or says why not."""
    field = Account._meta.get_field("api_key")
    value = field.from_db_value(stored, None, None)
    if stored == "":
        assert value == ""
        return
    assert isinstance(value, Sealed) and str(value) == "<encrypted>"
    assert value.readable is False
    with pytest.raises(CredentialsUnreadable, match="enter them again"):
        value.reveal()
    assert value.for_storage() == stored  # kept as it was, never lost


@hsettings(max_examples=100, deadline=None)
@given(secret=st.text())
def test_any_plain_text_round_trips(secret):
    field = Account._meta.get_field("api_secret")
    stored = field.get_prep_value(secret)
    if secret == "":
        assert stored == ""
        return
    assert stored.startswith("fernet:")
    assert field.from_db_value(stored, None, None).reveal() == secret
