"""Pages checked in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

A page passes when it loads with no console error, no uncaught script error and no failed request,
and every expected text is in its DOM; a full-page screenshot is saved when asked. Used by the
browser tests and at the end of ``make demo`` (screenshots under ``$MODELGATE_HOME/screenshots/``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CANDIDATES = ("chromium", "chromium-browser")
AIRFLOW_COOKIE = "_token"
"""The cookie the Airflow UI keeps its JWT in (what the plugin page reads when opened from the UI)."""


class BrowserError(RuntimeError):
    """Raised when no Chromium is present and it cannot be installed."""


@dataclass
class PageCheck:
    """What a browser saw on one page."""

    url: str
    errors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    title: str = ""
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        """No error and every expected text present."""
        return not self.errors and not self.missing


def chromium_path() -> str | None:
    """Return the system Chromium executable, or None."""
    return next((p for p in (shutil.which(c) for c in CANDIDATES) if p), None)


def ensure_chromium() -> str:
    """Return the system Chromium, installing Debian's ``chromium`` first when missing and running as root.

    Raises:
        BrowserError: missing and not installable here.
    """
    path = chromium_path()
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserError("chromium is not installed: run `apt-get install chromium` as root (.ci/run does)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise BrowserError(f"{' '.join(cmd)} failed: {res.stderr[-500:]}")
    path = chromium_path()
    if not path:
        raise BrowserError("apt-get installed chromium but no chromium executable is on PATH")
    return path


def _listen(page: Any, check: PageCheck) -> None:
    """Record console errors, uncaught script errors and failed requests of a page into ``check``."""

    def console(m: Any) -> None:
        if m.type == "error":
            check.errors.append(f"console: {m.text}")

    page.on("console", console)
    page.on("pageerror", lambda e: check.errors.append(f"script error: {e}"))
    page.on("requestfailed", lambda r: check.errors.append(f"request failed: {r.url} {r.failure}"))


def check_pages(
    pages: list[tuple[str, list[str], Path | None]],
    cookies: list[dict[str, Any]] | None = None,
    timeout_s: float = 60.0,
    http_credentials: dict[str, str] | None = None,
) -> list[PageCheck]:
    """Load each page in headless Chromium and report what went wrong.

    Args:
        pages: ``(url, texts that must be in the DOM, screenshot path or None)``.
        cookies: cookies for the browser context (e.g. the Airflow session cookie).
        timeout_s: per-page load timeout.
        http_credentials: HTTP basic credentials (``username``, ``password``, ``origin``) sent to that
            origin (MLflow's basic-auth app serves the reports).

    Returns:
        One :class:`PageCheck` per page, in order.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=ensure_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            extra: dict[str, Any] = {}
            if http_credentials:
                extra["http_credentials"] = {**http_credentials, "send": "always"}
            context = browser.new_context(viewport={"width": 1280, "height": 900}, **extra)
            if cookies:
                context.add_cookies(cookies)  # type: ignore[arg-type]
            for url, texts, shot in pages:
                check = PageCheck(url)
                page = context.new_page()
                _listen(page, check)
                try:
                    resp = page.goto(url, wait_until="load", timeout=timeout_s * 1000)
                    if resp is not None and resp.status >= 400:
                        check.errors.append(f"HTTP {resp.status}")
                    dom = page.content()
                    check.missing = [t for t in texts if t not in dom]
                    check.title = page.title()
                    if shot is not None:
                        shot.parent.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(shot), full_page=True)
                        check.screenshot = shot
                except PlaywrightError as e:
                    check.errors.append(f"browser: {e}")
                page.close()
                out.append(check)
        finally:
            browser.close()
    return out


def answer_in_page(
    url: str, option: str, cookies: list[dict[str, Any]], expect: list[str], screenshot: Path | None = None
) -> PageCheck:
    """Open a plugin page, press the first approval's ``option`` button, and check the page it lands on.

    Args:
        url: the model's plugin page.
        option: the button to press (``Approve``, ``Reject``...).
        cookies: the Airflow session cookie.
        expect: texts the landing page must contain.
        screenshot: where to save the landing page.

    Returns:
        What the browser saw (errors on both pages; texts missing on the landing page).
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    check = PageCheck(url)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=ensure_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context()
            context.add_cookies(cookies)  # type: ignore[arg-type]
            page = context.new_page()
            _listen(page, check)
            try:
                page.goto(url, wait_until="load")
                with page.expect_navigation(wait_until="load"):
                    page.locator(f"form button[value='{option}']").first.click()
                dom = page.content()
                check.missing = [t for t in expect if t not in dom]
                if screenshot is not None:
                    page.screenshot(path=str(screenshot), full_page=True)
                    check.screenshot = screenshot
            except PlaywrightError as e:
                check.errors.append(f"browser: {e}")
        finally:
            browser.close()
    return check


def demo_pages(
    summary: dict[str, Any], password: str, reports: Path
) -> tuple[list[tuple[str, list[str], str]], list[dict[str, Any]]]:
    """Return the demo's pages to check (url, texts, screenshot name) and the Airflow cookie to sign in with.

    The regression and A/B reports are MLflow artifacts, which MLflow's ``get-artifact`` answers as a
    download; they are fetched through the MLflow client into ``reports`` and opened from there, as the
    drift report is.

    Args:
        summary: the demo summary (``modelgate_dev.demo.run``).
        password: the Airflow admin password.
        reports: folder the MLflow report artifacts are downloaded to.
    """
    from urllib.parse import parse_qs, urlsplit

    import httpx
    from mlflow.tracking import MlflowClient

    airflow, model = summary["airflow_ui"].rstrip("/"), summary["model"]
    r = httpx.post(f"{airflow}/auth/token", json={"username": "admin", "password": password}, timeout=30)
    r.raise_for_status()
    cookies = [{"name": AIRFLOW_COOKIE, "value": r.json()["access_token"], "url": airflow}]
    client = MlflowClient(summary["mlflow_ui"])

    def local(run: str, artifact: str, name: str) -> str:
        folder = reports / name
        folder.mkdir(parents=True, exist_ok=True)
        return Path(client.download_artifacts(run, artifact, str(folder))).resolve().as_uri()

    pages = [(f"{airflow}/modelgate/models/{model}", [model, "Versions and gate verdicts"], "plugin.png")]
    version = (summary.get("regression") or {}).get("version")
    if version:
        tags = client.get_model_version(model, str(version)).tags or {}
        run = tags.get("modelgate.regression.mlflow_run_id")
        if run:
            pages.append((local(run, "report/report.html", "regression"), ["Verdict"], "regression.png"))
    ab_url = (summary.get("ab") or {}).get("report_url")
    if ab_url:
        query = parse_qs(urlsplit(ab_url).query)
        pages.append((local(query["run_uuid"][0], query["path"][0], "abtest"), ["Decision"], "abtest.png"))
    if (summary.get("drift") or {}).get("report_file"):
        pages.append((Path(summary["drift"]["report_file"]).resolve().as_uri(), ["Drift"], "drift.png"))
    return pages, cookies


def demo_screenshots(summary: dict[str, Any], home: Path, password: str) -> list[PageCheck]:
    """Check the demo's plugin page and reports in Chromium and save screenshots under ``home/screenshots``."""
    from urllib.parse import urlsplit

    from include.registry.credentials import read_identity

    folder = home / "screenshots"
    pages, cookies = demo_pages(summary, password, folder / "reports")
    who = read_identity(home / "secrets", "admin")  # MLflow's reports are read as its human admin
    mlflow = urlsplit(summary["mlflow_ui"])
    creds = {"username": who.username, "password": who.password, "origin": f"{mlflow.scheme}://{mlflow.netloc}"}
    return check_pages([(u, t, folder / name) for u, t, name in pages], cookies, http_credentials=creds)
