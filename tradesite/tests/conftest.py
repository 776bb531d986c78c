"""Browser-test fixtures for this folder's tests: the real web server (``web``), a trader who
can log in through it (``trader``), and one server with one logged-in browser context shared by
a module's page tests (``shared_site``). Modules defining their own ``trader`` keep theirs."""

from tradesite.tests.browser import shared_site, shell_page, trader, web, web_server  # noqa: F401
