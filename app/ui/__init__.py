"""The static pages people open in a browser (`/ui/…`): plain HTML, CSS and JS, no build step.

They hold no secret: each page asks for a token (an API key or a login's access token) in a form or the URL's
fragment, and calls the public API with it like any other client. Chart.js 4 is vendored under `static/vendor/`
(MIT, its licence beside it) so the pages work offline. Served by app/api/ui.py when `UI_ENABLED` (default on).
"""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {"analytics": STATIC_DIR / "analytics.html"}
