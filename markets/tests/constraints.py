"""Shared by each app's constraint tests: a bad row must be refused by the database itself."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rejected(create) -> None:
    """``create()`` must raise IntegrityError; the failed statement is rolled back."""
    with pytest.raises(IntegrityError), transaction.atomic():
        create()
