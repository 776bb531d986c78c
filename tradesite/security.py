"""The Content-Security-Policy every page is served with (django-csp reads it from settings).

Scripts, styles, images, fonts and connections (WebSockets included) only from this site; no
inline script anywhere (pages load their code from ``static/js``; data goes in
``json_script`` blocks, which are not executed). The one inline style allowed, by its hash, is
the attribution logo's ``<style>`` that lightweight-charts adds to every chart
(:data:`LIGHTWEIGHT_CHARTS_STYLE`); ``tradesite/tests/test_security.py`` checks it against the
vendored file, so an upgrade that changes it fails there instead of in a browser.
"""

from __future__ import annotations

import base64
import hashlib

from csp.constants import NONE, SELF

#: The text lightweight-charts 5.2.1 puts in its ``<style>`` element (the TradingView logo).
LIGHTWEIGHT_CHARTS_STYLE = (
    "a#tv-attr-logo{--fill:#131722;--stroke:#fff;position:absolute;left:10px;bottom:10px;"
    "height:19px;width:35px;margin:0;padding:0;border:0;z-index:3;}"
    "a#tv-attr-logo[data-dark]{--fill:#D1D4DC;--stroke:#131722;}"
)


def source_hash(text: str) -> str:
    """The CSP source expression that allows exactly the inline ``text``."""
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def content_security_policy() -> dict:
    return {
        "DIRECTIVES": {
            "default-src": [SELF],
            "script-src": [SELF],
            "style-src": [SELF, source_hash(LIGHTWEIGHT_CHARTS_STYLE)],
            "img-src": [SELF, "data:"],
            "font-src": [SELF],
            "connect-src": [SELF],
            "object-src": [NONE],
            "base-uri": [NONE],
            "form-action": [SELF],
            "frame-ancestors": [NONE],
        }
    }
