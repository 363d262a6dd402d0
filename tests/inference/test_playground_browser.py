"""The playground page in a real browser: Debian's headless Chromium driven by its chromium-driver through
selenium (offline: no driver download). Every list the page shows is compared with the engine called
directly. Screenshots go to build/screenshots/. Skipped, saying why, where Chromium or its driver is missing
(``make setup`` installs both where the user is root)."""
import csv
import json
import threading
from pathlib import Path

import pytest

from inference.engine import Recommender
from inference.playground.app import create_playground
from inference.playground.catalogue import read_items_file

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make setup)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
K = 10
WAIT_SECONDS = 30

pytestmark = pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.exists()),
                                reason="Debian's chromium and chromium-driver are not installed (make setup as root)")


@pytest.fixture(scope="module")
def engine(model_dir):
    return Recommender.load(model_dir)


@pytest.fixture(scope="module")
def items_file(model_dir, tmp_path_factory):
    """Names and categories for every item of the model, and an inline image for the first."""
    ids = json.loads((model_dir / "items.json").read_text())
    pixel = ("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E"
             "%3Crect width='32' height='32' fill='orange'/%3E%3C/svg%3E")
    path = tmp_path_factory.mktemp("playground") / "items.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "name", "category", "image_url"])
        writer.writerows([item, f"Product {item}", f"{'even' if int(item) % 2 == 0 else 'odd'} shelf",
                          pixel if n == 0 else ""] for n, item in enumerate(ids))
    return path


@pytest.fixture(scope="module")
def url(model_dir, items_file):
    server = make_server("127.0.0.1", 0, create_playground(model_dir, read_items_file(items_file)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}/"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,950"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # selenium manager must not fetch a driver: the system's is used
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, url):
    """The page freshly loaded, its first update done."""
    browser.get(url)
    wait_for_updates(browser, 0)
    return browser


def body_data(driver, name: str) -> str | None:
    """The page's ``data-<name>`` mark on <body>, set by its script once an update is drawn."""
    return driver.find_element(By.TAG_NAME, "body").get_attribute(f"data-{name}")


def updates(driver) -> int:
    return int(body_data(driver, "updates"))


def wait_for_updates(driver, before: int) -> None:
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: updates(d) > before)


def act(driver, action) -> None:
    """Run ``action`` (a click, a submit) and wait until the page has redrawn after it."""
    before = updates(driver)
    action()
    wait_for_updates(driver, before)


def shown(driver, list_id: str) -> list[tuple[str, float]]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{list_id} > li")
    return [(row.get_attribute("data-item-id"), float(row.get_attribute("data-score"))) for row in rows]


def catalogue_row(driver, item_id: str):
    return driver.find_element(By.CSS_SELECTOR, f'#catalogue > li[data-item-id="{item_id}"]')


def screenshot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def severe(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_page_loads_with_no_console_error(page, engine):
    rows = page.find_elements(By.CSS_SELECTOR, "#catalogue > li")
    assert [row.get_attribute("data-item-id") for row in rows[:5]] == engine.popular[:5]
    assert rows[0].find_element(By.CSS_SELECTOR, ".label").text.startswith(f"Product {engine.popular[0]}")
    assert shown(page, "popular-list") == [(item, 0.0) for item in engine.popular[:K]]
    assert shown(page, "model-list") == []
    assert severe(page) == []
    screenshot(page, "loaded")


def test_clicks_build_a_session_and_the_lists_are_the_engines(page, engine):
    session = engine.popular[:3]
    for item in session:
        act(page, catalogue_row(page, item).find_element(By.CSS_SELECTOR, ".label").click)
    chips = page.find_elements(By.CSS_SELECTOR, "#session > li")
    assert [chip.get_attribute("data-item-id") for chip in chips] == session
    assert shown(page, "model-list") == engine.recommend([session], k=K)[0].recommendations
    assert shown(page, "popular-list") == engine.recommend([[]], k=K)[0].recommendations
    assert not page.find_element(By.ID, "fallback").is_displayed()
    assert severe(page) == []
    screenshot(page, "session")


def test_excluding_an_item_removes_it_from_the_list(page, engine):
    session = [engine.popular[0]]
    act(page, catalogue_row(page, session[0]).find_element(By.CSS_SELECTOR, ".label").click)
    top = shown(page, "model-list")[0][0]
    act(page, page.find_element(By.CSS_SELECTOR, f'#model-list > li[data-item-id="{top}"] button.exclude').click)
    expected = engine.recommend([session], k=K, filters=[engine.item_filter([top], None)])[0].recommendations
    assert top not in [item for item, _ in shown(page, "model-list")]
    assert shown(page, "model-list") == expected
    excluded = page.find_elements(By.CSS_SELECTOR, "#excluded > li")
    assert [chip.get_attribute("data-item-id") for chip in excluded] == [top]
    screenshot(page, "excluded")


def test_an_unknown_id_shows_the_fallback(page, engine):
    page.find_element(By.ID, "item-id").send_keys("no-such-item")
    act(page, page.find_element(By.CSS_SELECTOR, "#add-by-id button").click)
    assert page.find_element(By.ID, "fallback").is_displayed()
    assert shown(page, "model-list") == [(item, 0.0) for item in engine.popular[:K]]
    assert "1 item(s) of the session unknown" in page.find_element(By.ID, "status").text
    screenshot(page, "fallback")


def test_search_by_name_keeps_the_matching_items(page, engine):
    item = engine.popular[4]
    query = f"product {item}"
    page.find_element(By.ID, "search").send_keys(query)
    WebDriverWait(page, WAIT_SECONDS).until(lambda d: body_data(d, "searched") == query)
    rows = page.find_elements(By.CSS_SELECTOR, "#catalogue > li")
    assert [row.get_attribute("data-item-id") for row in rows] == [item]


def test_report_tab_shows_the_models_figures(page, model_dir):
    metadata = json.loads((model_dir / "metadata.json").read_text())
    page.find_element(By.ID, "tab-report").click()
    WebDriverWait(page, WAIT_SECONDS).until(lambda d: body_data(d, "report") == "shown")
    for name, value in metadata["metrics"].items():
        figure = page.find_element(By.CSS_SELECTOR, f'td[data-metric="{name}"][data-split="test"]')
        assert figure.is_displayed() and figure.text == f"{value:.4f}"
    assert not page.find_element(By.ID, "try").is_displayed()
    assert page.find_element(By.ID, "report-version").text == metadata["model_version"]
    plot = page.find_element(By.ID, "training-plot")
    WebDriverWait(page, WAIT_SECONDS).until(lambda d: plot.get_property("naturalWidth") > 0)
    assert plot.is_displayed()
    assert severe(page) == []
    screenshot(page, "report")
