"""Browser tests run last: Playwright's sync API keeps an event loop running in the main thread
for the rest of the session, after which pytest-asyncio cannot start its own ("Runner.run()
cannot be called from a running event loop"), so async tests must come first."""

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
