"""Drives the mt5bot console in headless Chromium as an operator would (tests/console.rs runs it).

Usage: drive.py BASE_URL API_KEY OUT_DIR
       drive.py BASE_URL --shot OUT_DIR      (only a screenshot, console.png, once the chart has
                                              a minute of points: for docs/console.png)

Checks, failing with a message on the first that does not hold:
- the page loads with no console error, and shows the engine's state;
- the equity chart gets points, and the alert Prometheus has firing is listed;
- a wrong API key shows an error and changes nothing;
- halt with the right key shows `halted` on the page and in the daemon's /api/v1/status, and the
  figures on the page (state, reason, fills, balance, positions, markets) equal that status;
- resume shows `active` again, on the page and in the daemon;
- the screenshots are not blank, and neither is the chart in them.
Screenshots are written to OUT_DIR (console.png, halted.png).
"""

import json
import os
import sys
import time
import urllib.request

from PIL import Image, ImageStat
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import chromium  # noqa: E402

BASE, KEY, OUT = sys.argv[1], sys.argv[2], sys.argv[3]


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def status():
    req = urllib.request.Request(BASE + "/api/v1/status", headers={"Authorization": "Bearer " + KEY})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def wait(driver, what, predicate, timeout=20):
    try:
        # The page redraws its tables and chart on every poll: an element may go stale under a look.
        return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: predicate(d))
    except Exception:
        fail("timed out waiting for " + what)


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text.strip()


def chart_points(driver):
    return driver.execute_script(
        "const l = document.getElementById('equity-line'); return l ? l.getAttribute('points').split(' ').length : 0;")


def first_cells(driver, table):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr'))"
        ".map((r) => r.cells[0].textContent.trim());", table)


def severe(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def not_blank(path, box=None):
    image = Image.open(path).convert("L")
    if box is not None:
        image = image.crop(box)
    stat = ImageStat.Stat(image)
    return stat.stddev[0], len(set(image.getdata()))


def money(x):
    return "{:,.2f}".format(x)


driver = chromium.start(OUT, 1400, 1200)
try:
    driver.set_page_load_timeout(20)
    driver.get(BASE + "/")
    if KEY == "--shot":
        wait(driver, "a minute of chart points",
             lambda d: chart_points(d) >= 30, timeout=300)
        driver.set_window_size(1400, 1450)  # the whole page, markets and actions included
        time.sleep(2.5)
        driver.save_screenshot(OUT + "/console.png")
        print("OK screenshot", flush=True)
        sys.exit(0)
    wait(driver, "the trading state on the page", lambda d: text(d, "state") in ("active", "reducing", "halted"))
    wait(driver, "the equity chart to have points", lambda d: chart_points(d) >= 3)
    errors = severe(driver)
    if errors:
        fail("console errors on load: " + json.dumps(errors))
    wait(driver, "the firing test alert from Prometheus", lambda d: "ConsoleTestAlert" in first_cells(d, "alerts"))
    if text(driver, "state") != status()["trading"]["state"]:
        fail("the state shown differs from the daemon's")
    driver.save_screenshot(OUT + "/console.png")

    # A wrong key: an error on the page, nothing changes.
    driver.find_element(By.ID, "key").send_keys("not-the-key")
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    driver.find_element(By.CSS_SELECTOR, "button[data-action=halt]").click()
    wait(driver, "the wrong key's error", lambda d: "refused" in text(d, "result"))
    if "error" not in driver.find_element(By.ID, "result").get_attribute("class"):
        fail("a refused key is not shown as an error")
    if status()["trading"]["state"] != "active":
        fail("a wrong key changed the state")

    # The right key: halt, on the page and in the daemon.
    driver.find_element(By.ID, "forget").click()
    driver.find_element(By.ID, "key").send_keys(KEY)
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    if driver.execute_script("return sessionStorage.getItem('mt5bot.api_key')") != KEY:
        fail("the key is not kept in sessionStorage")
    if KEY in driver.current_url or driver.get_cookies():
        fail("the key went into the URL or a cookie")
    driver.find_element(By.ID, "reason").send_keys("console test")
    driver.find_element(By.CSS_SELECTOR, "button[data-action=halt]").click()
    wait(driver, "halt to be done", lambda d: "halt: done" in text(d, "result"))
    if status()["trading"]["state"] != "halted":
        fail("the daemon is not halted after halt")
    wait(driver, "the page to show halted", lambda d: text(d, "state") == "halted")
    # Halted, nothing new trades: let in-flight orders settle, then the page must equal the status.
    time.sleep(3)
    for attempt in range(10):
        s = status()
        time.sleep(2.5)  # two polls of the page
        page = {
            "state": text(driver, "state"),
            "why": text(driver, "state-why"),
            "trades": text(driver, "trades"),
            "balance": text(driver, "balance"),
            "queue": text(driver, "queue"),
            "positions": first_cells(driver, "positions"),
            "markets": first_cells(driver, "markets"),
            "fills": first_cells(driver, "fills"),
        }
        if status()["trades"] != s["trades"]:
            continue  # a fill arrived meanwhile; look again
        expected = {
            "state": "halted",
            "trades": str(s["trades"]),
            "queue": "{} / {}".format(s["queue"]["depth"], s["queue"]["capacity"]),
            "positions": [p["symbol"] for p in s["positions"]] or ["none"],
            "markets": [m["symbol"] for m in s["markets"]] or ["none"],
            "fills": [f["at"][11:23] for f in reversed(s["recent_fills"][-8:])] or ["none"],
        }
        got = {k: page[k] for k in expected}
        if got != expected:
            fail("the page shows {} where the daemon's status says {}".format(got, expected))
        if "console test" not in page["why"] or "by operator" not in page["why"]:
            fail("the reason is not shown: " + page["why"])
        if not page["balance"].startswith("balance " + money(s["equity"]["balance"])):
            fail("balance {!r} differs from {}".format(page["balance"], s["equity"]["balance"]))
        break
    else:
        fail("the fills never stopped while halted")
    driver.save_screenshot(OUT + "/halted.png")

    # Resume.
    driver.find_element(By.CSS_SELECTOR, "button[data-action=resume]").click()
    wait(driver, "resume to be done", lambda d: "resume: done" in text(d, "result"))
    wait(driver, "the page to show active", lambda d: text(d, "state") == "active")
    if status()["trading"]["state"] != "active":
        fail("the daemon is not active after resume")

    # Pictures: not blank, and the chart in them holds a drawing.
    chart = driver.find_element(By.ID, "chart")
    r = chart.rect
    box = (int(r["x"]), int(r["y"]), int(r["x"] + r["width"]), int(r["y"] + r["height"]))
    for shot in ["console.png", "halted.png"]:
        stddev, shades = not_blank(OUT + "/" + shot)
        if stddev < 8 or shades < 16:
            fail("{} looks blank (stddev {:.1f}, {} shades)".format(shot, stddev, shades))
        stddev, shades = not_blank(OUT + "/" + shot, box)
        if stddev < 2 or shades < 4:
            fail("the chart in {} looks blank (stddev {:.1f}, {} shades)".format(shot, stddev, shades))
    print("OK " + json.dumps({"chart_points": chart_points(driver)}), flush=True)
finally:
    driver.quit()
