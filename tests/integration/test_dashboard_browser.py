"""The dashboard in a real headless Chromium: log in with the key, watch requests appear with their
timings, unload a model with its button, no console errors. Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from local_lattice.api.app import create_app
from local_lattice.backends.fake import FakeBackend
from local_lattice.config import load
from local_lattice.observability.record import SwarmCandidate, SwarmRun
from local_lattice.types import ModelInfo
from tests.support.fakes import FakeLoaderBackend
from tests.support.procs import free_port

KEY = "browser-key"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--window-size=1440,1600",
)  # fmt: skip


class Served:
    def __init__(self, url: str, server: uvicorn.Server) -> None:
        self.url = url
        self.server = server

    @property
    def gateway(self):  # type: ignore[no-untyped-def]
        return self.server.config.loaded_app.app.state.gateway  # the app under uvicorn's wrappers


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    # A request for a model that is not there is the failure the page shows: no fallback here.
    config = load(None, {"MIDDLE_LAYER_API_KEY": KEY, "LATTICE_LEDGER_PATH": ":memory:", "ON_MODEL_MISS": "error"})
    config.roles = {"coder": ["qwen2.5-coder-7b", "*coder*"], "fast": ["smollm2-135m"], "default": ["llama-3.2-3b"]}
    local = FakeLoaderBackend(
        "local",
        [
            ModelInfo("smollm2-135m", "local", loaded=True),
            ModelInfo("qwen2.5-coder-7b", "local", loaded=True),
            ModelInfo("llama-3.2-3b", "local", loaded=False),
        ],
        reply="the quick brown fox jumps over the lazy dog " * 3,
        token_delay=0.004,
    )
    remote = FakeBackend.with_models("lmstudio", "mistral-7b-instruct", "nomic-embed", reply="a short answer")
    app = create_app(config, {"local": local, "lmstudio": remote})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield Served(f"http://127.0.0.1:{port}", server)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.fail("Debian chromium and chromium-driver are needed: apt-get install chromium chromium-driver")
    profile = tempfile.mkdtemp(prefix="lattice-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def chat(base: str, model: str, request_id: str, stream: bool = False) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    headers = {"X-API-Key": KEY, "X-Request-Id": request_id}
    return httpx.post(base + "/v1/chat/completions", json=body, headers=headers, timeout=30).status_code


def shot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


ROWS_JS = """
return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr')).map((row) => ({
  cells: Array.from(row.cells).map((c) => c.textContent).join(' | '),
  'data-model': row.getAttribute('data-model') || '',
  'data-loaded': row.getAttribute('data-loaded') || '',
  'data-request-id': row.getAttribute('data-request-id') || '',
}));
"""


def rows(driver: WebDriver, table: str) -> list[dict[str, str]]:
    """A table's rows read in one script call (the page re-renders them every poll)."""
    found: list[dict[str, str]] = driver.execute_script(ROWS_JS, table)
    return found


def click(driver: WebDriver, selector: str) -> None:
    """A real click; retried when the poll re-rendered the table between finding and clicking."""
    for _ in range(10):
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"could not click {selector}")


def severe(driver: WebDriver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.mark.slow
def test_dashboard_end_to_end(served: Served, browser: WebDriver) -> None:
    wait = WebDriverWait(browser, 15, poll_frequency=0.1)
    browser.get(served.url + "/dashboard/")
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
    assert not browser.find_element(By.ID, "main").is_displayed()
    shot(browser, "01-login")

    browser.find_element(By.ID, "key").send_keys(KEY)
    browser.find_element(By.ID, "login-submit").click()
    wait.until(lambda d: d.find_element(By.ID, "main").is_displayed())
    wait.until(lambda d: len(rows(d, "models")) == 5)
    models = {r["data-model"]: r["data-loaded"] for r in rows(browser, "models")}
    assert models == {
        "llama-3.2-3b": "0",
        "qwen2.5-coder-7b": "1",
        "smollm2-135m": "1",
        "mistral-7b-instruct": "0",
        "nomic-embed": "0",
    }
    assert "role:coder" in browser.find_element(By.ID, "roles").text

    # traffic spread over a few chart buckets, one failure, one swarm run
    for i in range(12):
        assert chat(served.url, "qwen2.5-coder-7b", f"req-coder-{i}", stream=i % 2 == 0) == 200
        assert chat(served.url, "mistral-7b-instruct", f"req-mistral-{i}") == 200
        time.sleep(0.4)
    assert chat(served.url, "no-such-model", "req-missing") == 404
    assert chat(served.url, "smollm2-135m", "req-last", stream=True) == 200
    candidates = (
        SwarmCandidate("qwen2.5-coder-7b", True, 1.21, score=0.82),
        SwarmCandidate("mistral-7b-instruct", True, 0.94, score=0.67),
        SwarmCandidate("smollm2-135m", False, 3.0, "timeout"),
    )
    served.gateway.observer.swarm_run(
        SwarmRun("req-swarm-1", "best-of-n", candidates, "qwen2.5-coder-7b", "Most complete answer; cites the API.")
    )

    wait.until(lambda d: any(r["data-request-id"] == "req-last" for r in rows(d, "recent")))
    recent = {r["data-request-id"]: r["cells"] for r in rows(browser, "recent")}
    last = recent["req-last"]
    assert "smollm2-135m" in last
    assert "local" in last
    assert " ms" in last  # latency and time to first token are shown
    assert "| 200 |" in last
    assert "404" in recent["req-missing"]
    assert "model_not_found" in recent["req-missing"]
    wait.until(lambda d: "qwen2.5-coder-7b" in d.find_element(By.ID, "swarm").text)
    assert "Most complete answer" in browser.find_element(By.ID, "swarm").text
    assert browser.find_element(By.CSS_SELECTOR, "#chart-rate .value").text not in ("", "\u2013")  # en dash = no data
    shot(browser, "02-requests-light")
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    time.sleep(2.5)  # one poll: charts redraw with the dark palette
    shot(browser, "03-requests-dark")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    click(browser, 'button[data-action="unload"][data-model="smollm2-135m"]')
    wait.until(lambda d: {r["data-model"]: r["data-loaded"] for r in rows(d, "models")}["smollm2-135m"] == "0")
    assert "Unloaded smollm2-135m" in browser.find_element(By.ID, "toast").text
    loaded = [r["data-model"] for r in rows(browser, "models") if r["data-loaded"] == "1"]
    assert loaded == ["qwen2.5-coder-7b"]
    shot(browser, "04-unloaded")

    assert severe(browser) == []


@pytest.mark.slow
def test_wrong_key_is_refused_in_the_page(served: Served, browser: WebDriver) -> None:
    browser.get(served.url + "/dashboard/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(served.url + "/dashboard/")
    wait = WebDriverWait(browser, 10, poll_frequency=0.1)
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
    browser.find_element(By.ID, "key").send_keys("wrong")
    browser.find_element(By.ID, "login-submit").click()
    wait.until(lambda d: d.find_element(By.ID, "login-error").is_displayed())
    assert "refused" in browser.find_element(By.ID, "login-error").text
    browser.get_log("browser")  # the 401 is logged by the browser itself, expectedly


FIRST_PAINT_JS = """
return {
  status: document.getElementById('status-text').textContent,
  main: !document.getElementById('main').hidden,
  login: !document.getElementById('login').hidden,
  models: Array.from(document.querySelectorAll('#models tbody tr')).map((r) => r.getAttribute('data-model')),
  totals: document.getElementById('totals').textContent,
};
"""


@pytest.mark.slow
def test_the_default_setups_dashboard_shows_data_on_first_paint(browser: WebDriver, tmp_path: Path) -> None:
    """``lattice serve`` with no config, as the README runs it: the page comes with its snapshot, so
    what the browser shows the moment the page has loaded is already the gateway's state."""
    from tests.support.models import SMOLLM2_ID
    from tests.support.servers import default_gateway

    with default_gateway(tmp_path) as gateway:
        body = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        assert httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=120).status_code == 200
        browser.execute_cdp_cmd("Network.clearBrowserCache", {})
        browser.get("about:blank")
        browser.get(gateway.url + "/dashboard/")  # returns once the page has loaded
        at_load = browser.execute_script(FIRST_PAINT_JS)
        shot(browser, "05-default-at-load")
        time.sleep(5)
        later = browser.execute_script(FIRST_PAINT_JS)
        shot(browser, "06-default-after-5s")
        problems = severe(browser)
        browser.get("about:blank")  # stop polling before the gateway stops, so no refused fetch is logged
    assert at_load["main"]
    assert not at_load["login"]
    assert at_load["status"] != "loading…"
    assert "backends healthy" in at_load["status"]
    assert SMOLLM2_ID in at_load["models"]
    assert "Inflight0" in at_load["totals"].replace(" ", "")
    assert "Requests1" in at_load["totals"].replace(" ", "")
    assert later["models"] == at_load["models"]  # the polls that followed drew the same state
    assert problems == []


@pytest.mark.slow
def test_fleet_members_show_their_load_latency_affinity_and_hedges(browser: WebDriver) -> None:
    config = load(None, {"MIDDLE_LAYER_API_KEY": KEY, "LATTICE_LEDGER_PATH": ":memory:"})
    one = FakeBackend.with_models("box-a", "shared-7b", reply="from a")
    two = FakeBackend.with_models("box-b", "shared-7b", reply="from b")
    app = create_app(config, {"box-a": one, "box-b": two})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        body = {"model": "shared-7b", "messages": [{"role": "user", "content": "hello"}]}
        for _turn in range(3):
            for session in ("s1", "s2", "s3", "s4"):
                headers = {"X-API-Key": KEY, "X-Session-Id": session}
                assert (
                    httpx.post(base + "/v1/chat/completions", json=body, headers=headers, timeout=30).status_code == 200
                )
        browser.get(base + "/dashboard/")
        browser.execute_script("sessionStorage.clear()")
        browser.get(base + "/dashboard/")
        wait = WebDriverWait(browser, 15, poll_frequency=0.1)
        wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
        browser.find_element(By.ID, "key").send_keys(KEY)
        browser.find_element(By.ID, "login-submit").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#backends .fleet")) == 2)
        lines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#backends .fleet")]
        assert all(line.startswith("fleet: 0 outstanding") for line in lines), lines
        assert all("ms to first byte" in line and "hedges 0/0 won" in line for line in lines), lines
        hits = sum(int(line.split(" affinity hits")[0].rsplit(" ", 1)[1]) for line in lines)
        assert hits == 8  # four sessions, three turns each: every turn after the first is a hit
        shot(browser, "05-fleet")
        assert severe(browser) == []
    finally:
        server.should_exit = True
        thread.join(timeout=10)
