"""Live profit and loss: an equity snapshot pushes ``equity.updated`` to its owner, and the
dashboard's socket (``/ws/markets/``) passes it and closed positions on, not symbol events."""

import json

import pytest
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from markets import wire
from orders import services
from orders.tests.conftest import fund
from tradesite.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_snapshot_pushes_equity_updated_to_its_owner(paper, listen, make_trader, make_account,
                                                       clean_redis):
    bob = make_trader("bob")
    fund(make_account(bob, label="bob-paper"), "KRW", "5")
    alice_inbox, bob_inbox = listen(paper.owner_id), listen(bob.pk)
    assert services.snapshot_equity() == 2
    [event] = [m for m in alice_inbox.drain() if m["type"] == wire.EQUITY_UPDATED]
    assert event["account"] == paper.pk and event["equity"] == "1000000"
    bobs = [m for m in bob_inbox.drain() if m["type"] == wire.EQUITY_UPDATED]
    assert len(bobs) == 1 and bobs[0]["account"] != paper.pk and bobs[0]["equity"] == "5"


@pytest.fixture
def owner(paper):
    """Loaded here, before the event loop: a query from the test's own loop would leave a
    connection open in the executor's thread."""
    return paper.owner


async def test_the_dashboard_socket_passes_account_wide_events(paper, owner, clean_redis):
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/markets/")
    comm.scope["user"] = owner
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert json.loads(await comm.receive_from(timeout=5))["type"] == "hello"
    group = wire.user_group(paper.owner_id)
    for kind, payload in (
        (wire.ORDER_UPDATED, {"id": 1, "symbol": "sim:KRW-BTC"}),
        (wire.POSITION_UPDATED, {"id": 2, "symbol": "sim:KRW-BTC", "open": True}),
        (wire.POSITION_UPDATED, {"id": 3, "symbol": "sim:KRW-BTC", "open": False}),
        (wire.EQUITY_UPDATED, {"account": paper.pk, "ts": 1, "equity": "5"}),
    ):
        await get_channel_layer().group_send(group, wire.private_message(kind, payload))
    got = [json.loads(await comm.receive_from(timeout=5)) for _ in range(2)]
    assert [(m["type"], m.get("id")) for m in got] == [
        (wire.POSITION_UPDATED, 3), (wire.EQUITY_UPDATED, None)]
    assert await comm.receive_nothing(0.3)
    await comm.disconnect()
