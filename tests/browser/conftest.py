"""Browser tests: Debian's headless Chromium (installed here when missing and running as root)."""

from __future__ import annotations

import pytest

from modelgate_dev.browser import BrowserError, ensure_chromium


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system Chromium's path; the test fails (never skips) when it cannot be had."""
    try:
        return ensure_chromium()
    except BrowserError as e:
        pytest.fail(str(e))
