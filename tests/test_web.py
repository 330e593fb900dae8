"""The registry server's web pages in a real headless browser (Debian's chromium and chromedriver, driven by selenium).

A real `adapters serve` (no --public-read) over a small real registry with a composed init: log in, list, filter,
open the init's page, see its lineage and weights chart, download its Hub-ready export. The run leaves a screenshot
of the init's page at out/screenshots/module-page.png for a person to look at.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("the browser test needs Debian's chromium and chromedriver in /usr/bin (apt-get install chromium chromium-driver)", allow_module_level=True)
pytest.importorskip("selenium", reason="the browser test needs selenium (pip install -e '.[dev]')")

from helpers import SOURCES, TARGET, build_small_registry  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

from hub import Hub, TransferOptions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "out" / "screenshots" / "module-page.png"
ADAPTERS = Path(sys.executable).with_name("adapters")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small registry (4 sources, the target's own module, and an el2n init of the target) and a read token."""
    root = tmp_path_factory.mktemp("web")
    registry, target = build_small_registry(suite, root)
    with Hub(registry) as hub:
        result = hub.ensemble(
            target, TransferOptions(base_model="minilm", method="lora", strategy="el2n", score_examples=8, temperature=0.002, combine="svd")
        )  # a low T: bars of visibly different lengths
        _, secret = hub.registry.tokens.create("browser", "read")
        weights = dict(result.weights)
        init_id = result.record.id
    assert len(set(round(w, 6) for w in weights.values())) > 1, "the chart should show differing bars"
    return {"root": root, "registry": registry, "init": init_id, "weights": weights, "secret": secret}


@pytest.fixture(scope="module")
def server(lab: dict):
    """`adapters serve` as a user starts it, on a free port; reads need a token."""
    port = free_port()
    log = (lab["root"] / "server.log").open("w")
    process = subprocess.Popen(
        [str(ADAPTERS), "serve", "--port", str(port), "--registry", str(lab["registry"])],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/info", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"`adapters serve` did not start: {(lab['root'] / 'server.log').read_text()[-2000:]}")
        time.sleep(0.3)
    yield url
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()
    # The token never reaches the server's log.
    assert lab["secret"] not in (lab["root"] / "server.log").read_text()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path):
    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(argument)
    options.binary_location = str(CHROMIUM)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False, "safebrowsing.enabled": True}
    )
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


def wait(driver, seconds: float = 20) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def log_in(driver, url: str, secret: str) -> None:
    driver.get(f"{url}/login")
    driver.find_element(By.ID, "token").send_keys(secret)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait(driver).until(expected_conditions.presence_of_element_located((By.ID, "modules")))


def signed_in(driver, url: str, secret: str) -> None:
    driver.get(url + "/")
    if "/login" in driver.current_url:
        log_in(driver, url, secret)


def table_rows(driver) -> list[list[str]]:
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in driver.find_elements(By.CSS_SELECTOR, "#modules tbody tr")]


def test_login_needs_a_right_token(browser, server, lab):
    browser.delete_all_cookies()
    browser.get(f"{server}/modules/{lab['init']}")
    assert "/login" in browser.current_url  # no token: the form, not the page
    assert browser.find_element(By.CSS_SELECTOR, "label[for=token]").text == "Token"
    assert browser.find_element(By.ID, "token").get_attribute("type") == "password"

    wrong = "dh_not-a-real-token-0123456789"
    browser.find_element(By.ID, "token").send_keys(wrong)
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    error = wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "login-error")))
    assert "unknown or revoked" in error.text and len(error.text.splitlines()) == 1
    assert wrong not in browser.page_source

    browser.find_element(By.ID, "token").send_keys(lab["secret"])
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    # back where it was going: the init's page
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "lineage")))
    assert browser.current_url.endswith(f"/modules/{lab['init']}")
    assert lab["secret"] not in browser.page_source
    cookie = browser.get_cookie("deltahub_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    browser.get(f"{server}/")
    assert len(table_rows(browser)) == len(SOURCES) + 2

    browser.find_element(By.LINK_TEXT, "Log out").click()
    wait(browser).until(expected_conditions.url_contains("/login"))
    browser.get(f"{server}/")
    assert "/login" in browser.current_url


def test_list_filters_narrow_the_rows(browser, server, lab):
    signed_in(browser, server, lab["secret"])
    everything = table_rows(browser)
    assert len(everything) == len(SOURCES) + 2  # four sources, the target's own module, the init
    header = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#modules thead th")]
    assert header[:4] == ["ID", "Task", "Category", "Method"]
    assert browser.find_element(By.ID, "count").text == "6 of 6 modules"

    Select(browser.find_element(By.ID, "category")).select_by_visible_text("taxonomy")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait(browser).until(expected_conditions.url_contains("category=taxonomy"))
    rows = table_rows(browser)
    assert sorted(row[1] for row in rows) == sorted(["wn-isa-plant", "wn-isa-artifact", TARGET, TARGET])
    assert Select(browser.find_element(By.ID, "category")).first_selected_option.text == "taxonomy"  # the state stays

    search = browser.find_element(By.ID, "q")
    search.send_keys("PLANT")  # any case
    search.submit()
    wait(browser).until(expected_conditions.url_contains("q=PLANT"))
    assert [row[1] for row in table_rows(browser)] == ["wn-isa-plant"]
    assert browser.find_element(By.ID, "count").text == "1 of 6 modules match"

    browser.get(f"{server}/?q=antonym")
    assert [row[1] for row in table_rows(browser)] == ["wn-antonym-noun"]
    browser.get(f"{server}/?q=no-such-thing")
    assert table_rows(browser) == [] and "No module matches" in browser.page_source


def test_init_page_shows_lineage_chart_and_downloads(browser, server, lab, downloads, tmp_path):
    signed_in(browser, server, lab["secret"])
    browser.get(f"{server}/?task={TARGET}")
    init_link = browser.find_element(By.CSS_SELECTOR, f"#modules a[href='/modules/{lab['init']}']")
    init_link.click()
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "lineage")))
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Module {lab['init']}: {TARGET}"
    lineage = browser.find_element(By.ID, "lineage").text
    assert "el2n" in lineage and "0.002" in lineage and "Operator\nsvd" in lineage
    assert "taxonomy" in browser.find_element(By.ID, "h-dataset").find_element(By.XPATH, "..").text
    assert '"r": 4' in browser.find_element(By.CSS_SELECTOR, "pre.config").text

    sources = browser.find_elements(By.CSS_SELECTOR, "#sources tbody tr")
    assert len(sources) == len(lab["weights"]) == len(SOURCES)
    shown = {}
    for row in sources:
        link = row.find_element(By.CSS_SELECTOR, "td a")
        shown[int(link.text.lstrip("#"))] = float(row.find_elements(By.TAG_NAME, "td")[-1].text)
    assert shown == pytest.approx(lab["weights"], abs=1e-4)

    bars = browser.find_elements(By.CSS_SELECTOR, "#weights-chart rect.bar")
    assert len(bars) == len(lab["weights"])
    widths = [float(bar.get_attribute("width")) for bar in bars]
    assert len(set(widths)) > 1 and max(widths) == pytest.approx(640 - 170 - 70)  # the largest weight spans the chart

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT)) and browser.save_screenshot(str(tmp_path / "module-page.png"))

    # a source's link leads to its page
    browser.find_element(By.CSS_SELECTOR, "#sources tbody tr td a").click()
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "h-module")))
    assert not browser.find_elements(By.ID, "lineage")  # a trained source has no lineage
    browser.back()
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "download")))

    browser.find_element(By.ID, "download").click()
    archive = downloads / f"module-{lab['init']}.zip"
    deadline = time.monotonic() + 60
    while not archive.exists() or any(downloads.glob("*.crdownload")):
        assert time.monotonic() < deadline, f"no download in {sorted(p.name for p in downloads.iterdir())}"
        time.sleep(0.2)
    with zipfile.ZipFile(archive) as opened:
        names = {Path(name).name for name in opened.namelist()}
        assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= names
        assert opened.testzip() is None
        files = {name: opened.read(name) for name in opened.namelist()}
    # the same files as the API's export
    request = urllib.request.Request(f"{server}/api/v1/modules/{lab['init']}/export", headers={"Authorization": f"Bearer {lab['secret']}"})
    with urllib.request.urlopen(request, timeout=60) as answer, zipfile.ZipFile(io.BytesIO(answer.read())) as api:
        assert {name: api.read(name) for name in api.namelist()} == files


def test_unknown_module_is_a_404_page(browser, server, lab):
    signed_in(browser, server, lab["secret"])
    browser.get(f"{server}/modules/987654")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
    assert browser.find_element(By.CSS_SELECTOR, "p.error").text == "No module 987654 in this registry."
    request = urllib.request.Request(f"{server}/modules/987654", headers={"Authorization": f"Bearer {lab['secret']}"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 404
    for bad in ("0", "-1", "..%2F..%2Fetc"):  # ids are validated
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(urllib.request.Request(f"{server}/modules/{bad}/download", headers={"Authorization": f"Bearer {lab['secret']}"}), timeout=10)
        assert answer.value.code in (404, 422)


def test_a_module_page_reads_whole(browser, server, lab):
    """The dataset card in full, the config without its nulls (all of it a click away), whole labels and task names, an icon."""
    signed_in(browser, server, lab["secret"])
    browser.set_window_size(760, 1400)  # narrow: whatever can wrap or be clipped does
    try:
        browser.get(f"{server}/modules/{lab['init']}")
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "lineage")))
        assert browser.find_element(By.ID, "task-description").text == "Is the second word a hypernym (a more general term) of the first, for WordNet animals?"
        assert [tag.text for tag in browser.find_elements(By.CSS_SELECTOR, "#task-labels .tag")] == ["no: no", "yes: yes"]
        assert browser.find_element(By.ID, "dataset-size").text == "16 (train 8, dev 8)"  # tiny(): 8 train + 8 dev examples, per split

        config = browser.find_element(By.ID, "config").text
        assert '"r": 4' in config and "null" not in config
        toggle = browser.find_element(By.CSS_SELECTOR, "#config-all summary")
        assert toggle.text.startswith("Show all ") and not browser.find_element(By.CSS_SELECTOR, "#config-all pre").is_displayed()
        toggle.click()
        assert "null" in browser.find_element(By.CSS_SELECTOR, "#config-all pre").text

        # Every label of the weights chart starts inside the chart, and each task name is on one line.
        left = browser.execute_script("return [...document.querySelectorAll('#weights-chart text.label')].map(t => t.getBBox().x)")
        assert len(left) == len(SOURCES) and min(left) >= 0, left
        lines = browser.execute_script(
            "return [...document.querySelectorAll('.name')].map(e => { const r = document.createRange(); r.selectNodeContents(e);"
            " return [e.textContent, new Set([...r.getClientRects()].map(b => Math.round(b.top))).size]; })"
        )
        assert lines and all(count == 1 for _name, count in lines), lines
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT.with_name("module-page-narrow.png")))
    finally:
        browser.set_window_size(1280, 1400)

    assert browser.find_element(By.CSS_SELECTOR, "link[rel=icon]").get_attribute("href").endswith("/static/favicon.svg")
    with urllib.request.urlopen(f"{server}/favicon.ico", timeout=10) as answer:
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("image/svg+xml") and b"<svg" in answer.read()
