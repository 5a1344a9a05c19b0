"""`/ui/analytics` in headless Chromium against a real `stageflow serve`: a small history with known answers is seeded,
the page is opened with a token in its URL fragment, and the drawn values (the Chart.js charts' data and the tables)
must equal the API's numbers, which must equal the counts the test computes itself. A wrong token, and a person whose
role cannot read the type, see a readable error. A screenshot is kept at test-artifacts/analytics.png.

Needs Debian's `chromium` and `chromium-driver` (skipped without them) and `selenium` (the dev extra).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.tokens import AccessTokens
from app.settings import Settings
from tests.analytics.conftest import Deal, Deals, Move, make_deals, seed
from tests.conftest import Tenant, make_client
from tests.factories import created
from tests.live import live_server

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NOW = datetime.now(UTC)
HOUR = 3600.0
DAY = 86400.0


def _browser_binaries() -> tuple[str, str] | None:
    chromium = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


BINARIES = _browser_binaries()
if BINARIES is None:
    pytest.skip(
        "no headless browser: install Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, "
        "/usr/bin/chromedriver), or point CHROMIUM_BIN / CHROMEDRIVER_BIN at them",
        allow_module_level=True,
    )


# --- the server, the browser --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url(
    database_url: str, embedded: dict[str, str], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real `stageflow serve` on a free port, on the session's database; it signs and checks access tokens with the
    in-process app's secret, so tokens issued by the test work there."""
    log = tmp_path_factory.mktemp("ui") / "server.log"
    with live_server(database_url, embedded["redis"], log, timeout=180, JWT_SECRET=settings.jwt_secret) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert BINARIES is not None
    chromium, driver_path = BINARIES
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1180",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: Any, base_url: str, fragment: str) -> str:
    """Load the page with this fragment and wait until it has drawn (or shown an error); returns the state."""
    browser.get("about:blank")  # a new document each time: the fragment alone would not reload the page
    browser.get(f"{base_url}/ui/analytics#{fragment}")
    try:
        WebDriverWait(browser, 20).until(
            lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("ready", "error")
        )
    except TimeoutException:
        raise AssertionError(f"the page never finished: {browser.get_log('browser')}") from None
    time.sleep(0.5)  # the charts' short animation
    return str(browser.find_element(By.TAG_NAME, "body").get_attribute("data-state"))


def chart_data(browser: Any, canvas_id: str) -> dict[str, Any]:
    return dict(
        browser.execute_script(
            """const chart = Chart.getChart(document.getElementById(arguments[0]));
            return chart ? {labels: chart.data.labels, datasets: chart.data.datasets.map(d => d.data)} : null;""",
            canvas_id,
        )
    )


def painted_pixels(browser: Any, canvas_id: str) -> int:
    return int(
        browser.execute_script(
            """const canvas = document.getElementById(arguments[0]);
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
            return painted;""",
            canvas_id,
        )
    )


def rows(browser: Any, testid: str) -> list[dict[str, str]]:
    return list(
        browser.execute_script(
            """return [...document.querySelectorAll(`[data-testid="${arguments[0]}"]`)].map(
                row => Object.assign({text: row.innerText}, row.dataset));""",
            testid,
        )
    )


# --- a history with known answers ---------------------------------------------------------------------------------


def known_history(deals: Deals) -> list[Deal]:
    """Ten deals created 6–10 days ago: 7 qualify after 2 h (one is lost from NEW after 5 h, two stay), 5 of those
    reach the proposal a day later (one is lost after 2 days, one stays), and 3 of those are won 3 days later (one
    is lost, one stays open). Amounts 1,000 × (n + 1)."""
    history = []
    for n in range(10):
        created_at = NOW - timedelta(days=10 - n * 0.4)
        moves = [Move(created_at, None, "NEW")]
        at = created_at
        if n == 7:
            moves.append(Move(at + timedelta(hours=5), "NEW", "LOST"))
        elif n < 7:
            at += timedelta(hours=2)
            moves.append(Move(at, "NEW", "QUALIFIED"))
            if n == 5:
                moves.append(Move(at + timedelta(days=2), "QUALIFIED", "LOST"))
            elif n < 5:
                at += timedelta(days=1)
                moves.append(Move(at, "QUALIFIED", "PROPOSAL"))
                if n < 3:
                    moves.append(Move(at + timedelta(days=3), "PROPOSAL", "WON"))
                elif n == 3:
                    moves.append(Move(at + timedelta(days=1), "PROPOSAL", "LOST"))
        history.append(Deal(uuid.uuid4(), created_at, deals.users[n % 3], 1000.0 * (n + 1), None, "web", "ads", moves))
    return history


EXPECTED_ENTERED = {"NEW": 10, "QUALIFIED": 7, "PROPOSAL": 5, "WON": 3, "LOST": 3}
EXPECTED_WON_AMOUNT = 1000.0 + 2000.0 + 3000.0


@pytest.fixture
async def seeded(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> Deals:
    deals = await make_deals(app, tenant, client)
    await seed(deals, known_history(deals))
    return deals


async def viewer_key(client: httpx.AsyncClient) -> str:
    response = await client.post("/api-keys", json={"name": "analytics page", "role": "viewer"})
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"])


# --- the tests ----------------------------------------------------------------------------------------------------


async def test_the_page_draws_the_apis_numbers(seeded: Deals, base_url: str, browser: Any) -> None:
    key = await viewer_key(seeded.client)
    # A period that ends in the future: the forecast then looks ahead (from the pipeline still open).
    start, end = (NOW - timedelta(days=20)).date().isoformat(), (NOW + timedelta(days=10)).date().isoformat()
    params = {"entity_type": "deal", "pipeline_id": seeded.pipeline_id, "from": start, "to": end}
    async with make_client(seeded.app, key) as api:
        funnel = (await api.get("/analytics/funnel", params=params)).json()
        times = (await api.get("/analytics/time-in-stage", params=params)).json()
        money = (await api.get("/analytics/money", params=params)).json()
    # The API agrees with the history's known answers …
    api_entered = {s["code"]: s["entered"] for s in funnel["groups"][0]["stages"]}
    assert api_entered == EXPECTED_ENTERED
    assert money["won_amount"] == pytest.approx(EXPECTED_WON_AMOUNT)
    new_stay = next(s for s in times["groups"][0]["stages"] if s["code"] == "NEW")
    assert new_stay["count"] == 8
    assert new_stay["p50_seconds"] == pytest.approx(2 * HOUR, rel=0.05)  # seven 2 h stays and one of 5 h

    state = open_page(browser, base_url, f"token={key}&type=deal&pipeline={seeded.pipeline_id}&from={start}&to={end}")
    assert state == "ready", browser.find_element(By.ID, "error").text
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "analytics.png"
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1440, max(900, int(height) + 100))  # the whole page in one picture
    await asyncio.sleep(0.5)
    browser.save_screenshot(str(screenshot))
    print(f"\nscreenshot: {screenshot}")
    # … and the page draws the API's numbers. The token left the address bar once read.
    assert "token=" not in browser.current_url
    assert f"pipeline={seeded.pipeline_id}" in browser.current_url
    assert f"{start} – {end} (31 days)" in browser.find_element(By.CSS_SELECTOR, '[data-testid="subtitle"]').text
    assert money["forecast"]["expected_from_open"] > 0

    drawn = chart_data(browser, "funnel-chart")
    stage_titles = {s["code"]: s["title"] for s in funnel["stages"]}
    assert drawn["labels"] == [stage_titles[s["code"]] for s in funnel["groups"][0]["stages"]]
    assert dict(zip([s["code"] for s in funnel["groups"][0]["stages"]], drawn["datasets"][0], strict=True)) == (
        EXPECTED_ENTERED
    )
    table = {row["stage"]: row for row in rows(browser, "funnel-row")}
    assert {code: int(row["entered"]) for code, row in table.items()} == EXPECTED_ENTERED
    assert float(table["NEW"]["conversionToNext"]) == pytest.approx(7 / 10)
    assert "70%" in table["NEW"]["text"]

    drawn = chart_data(browser, "time-chart")
    unit = float(browser.find_element(By.ID, "time-chart").get_attribute("data-unit-seconds"))
    stays = times["groups"][0]["stages"]
    for index, stay in enumerate(stays):
        for dataset, key_name in ((0, "p50_seconds"), (1, "p90_seconds")):
            value = drawn["datasets"][dataset][index]
            if stay[key_name] is None:
                assert value is None
            else:
                assert value * unit == pytest.approx(stay[key_name])
    time_rows = {row["stage"]: row for row in rows(browser, "time-row")}
    assert int(time_rows["NEW"]["count"]) == 8
    assert float(time_rows["NEW"]["p50Seconds"]) == pytest.approx(new_stay["p50_seconds"])

    drawn = chart_data(browser, "money-chart")
    forecast = money["forecast"]
    assert drawn["datasets"][0] == pytest.approx(
        [
            money["won_amount"],
            money["open_amount"],
            money["weighted_pipeline"],
            forecast["expected_from_open"],
            forecast["forecast"],
        ]
    )
    money_rows = {row["key"]: float(row["value"]) for row in rows(browser, "money-row")}
    assert money_rows["won"] == pytest.approx(EXPECTED_WON_AMOUNT)
    assert money_rows["forecast"] == pytest.approx(forecast["forecast"])
    assert money_rows["won-count"] == 3
    open_rows = {row["stage"]: int(row["count"]) for row in rows(browser, "open-row")}
    assert {code: count for code, count in open_rows.items() if count} == {"NEW": 2, "QUALIFIED": 1, "PROPOSAL": 1}
    assert browser.find_element(By.CSS_SELECTOR, '[data-testid="kpi-won"]').text == "3"

    for canvas in ("funnel-chart", "time-chart", "money-chart"):
        assert painted_pixels(browser, canvas) > 2000, f"{canvas} is blank"
    assert not browser.find_element(By.ID, "error").is_displayed()
    # No script errors, and nothing the Content-Security-Policy refused.
    problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not problems, problems


async def test_a_wrong_token_shows_a_readable_error(seeded: Deals, base_url: str, browser: Any) -> None:
    state = open_page(browser, base_url, "token=sf_not_a_real_key&type=deal")
    assert state == "error"
    error = browser.find_element(By.CSS_SELECTOR, '[data-testid="error"]')
    assert error.is_displayed()
    assert error.get_attribute("data-status") == "401"
    assert "The token was not accepted (401)" in error.text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "analytics-error.png"))
    assert not browser.find_element(By.ID, "cards").is_displayed()
    assert browser.execute_script("return !Chart.getChart(document.getElementById('funnel-chart'))")

    # An unknown type with a good token: 404, said plainly.
    key = await viewer_key(seeded.client)
    state = open_page(browser, base_url, f"token={key}&type=no_such_type")
    assert state == "error"
    error = browser.find_element(By.CSS_SELECTOR, '[data-testid="error"]')
    assert error.get_attribute("data-status") == "404"
    assert "Not found (404)" in error.text


async def test_a_role_that_cannot_read_the_type_sees_the_refusal(
    seeded: Deals, settings: Settings, base_url: str, browser: Any
) -> None:
    """A person whose role grants nothing on `deal`: the API refuses every report, and the page says so (the type is
    hidden from them, so the refusal is a 404, as the API answers it)."""
    role = created(
        await seeded.client.post(
            "/roles", json={"name": f"no deals {uuid.uuid4().hex[:6]}", "level": "viewer", "grants": []}
        )
    )
    user = created(
        await seeded.client.post(
            "/users",
            json={"name": "Outsider", "email": f"out.{uuid.uuid4().hex[:6]}@example.com", "role_ids": [role["id"]]},
        )
    )
    signer = AccessTokens(settings.jwt_secret, settings.ACCESS_TOKEN_MINUTES * 60)
    token = signer.issue(uuid.UUID(user["id"]), seeded.tenant.workspace_id).token
    async with make_client(seeded.app, token) as outsider:
        refused = await outsider.get("/analytics/funnel", params={"entity_type": "deal"})
    assert refused.status_code == 404, refused.text

    state = open_page(browser, base_url, f"token={token}&type=deal")
    assert state == "error"
    error = browser.find_element(By.CSS_SELECTOR, '[data-testid="error"]')
    assert error.get_attribute("data-status") == "404"
    assert "cannot read it" in error.text
    assert refused.json()["detail"] in error.text
    assert not browser.find_element(By.ID, "cards").is_displayed()
