"""What a browser test's pages did wrong: console errors, uncaught exceptions, failed requests
and HTTP answers >= 400. conftest's autouse fixture watches every browser test's pages with one
:class:`BrowserProblems` and fails the test at teardown if it recorded anything not allowed.

No Django import here: the root conftest imports this module before Django is set up.
"""

from __future__ import annotations

import re

#: Requests the browser itself gives up on when the page navigates or closes (a fetch in flight
#: at a click): not a failure of the page.
ABORTED = "net::ERR_ABORTED"


class BrowserProblems:
    def __init__(self) -> None:
        self.found: list[str] = []
        self.allowed: list[re.Pattern] = []
        self._listening: list[tuple[object, str, object]] = []

    def allow(self, *patterns: str) -> None:
        """Problems matching any of these regular expressions are expected (a test that
        provokes one on purpose)."""
        self.allowed.extend(re.compile(p) for p in patterns)

    def watch(self, target) -> None:
        """Listen to a Playwright BrowserContext (every page it opens) or a single Page."""
        is_context = hasattr(target, "new_page")
        handlers = {
            "console": self._console,
            "requestfailed": self._request_failed,
            "response": self._response,
            "weberror" if is_context else "pageerror": self._page_error,
        }
        for event, handler in handlers.items():
            target.on(event, handler)
            self._listening.append((target, event, handler))

    def unwatch(self) -> None:
        for target, event, handler in self._listening:
            target.remove_listener(event, handler)
        self._listening.clear()

    def record(self, text: str) -> None:
        if not any(p.search(text) for p in self.allowed):
            self.found.append(text)

    def take(self) -> list[str]:
        """What was recorded and not allowed since the last take()."""
        found, self.found = self.found, []
        return found

    def _console(self, message) -> None:
        if message.type == "error":
            location = message.location or {}
            self.record(f"console error: {message.text} ({location.get('url', '?')})")

    def _page_error(self, error) -> None:
        error = getattr(error, "error", error)  # a WebError wraps the page's Error
        self.record(f"uncaught exception: {error}")

    def _request_failed(self, request) -> None:
        failure = request.failure or "?"
        if ABORTED not in failure:
            self.record(f"request failed: {request.method} {request.url} ({failure})")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.record(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )
