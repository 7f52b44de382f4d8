"""Opens a backtest's report.html in headless Chromium as a trader would (tests/backtest.rs runs it).

Usage: view.py REPORT_DIR

Checks, failing with a message on the first that does not hold:
- the page loads from the file with no console error and fetches nothing (no resource entries);
- the figures on the page equal report.json (ticks, net profit, final equity, drawdown, fills,
  breaker trips, round trips);
- each of the four plots is drawn, sized, and not blank in a screenshot of it (Pillow: spread of
  shades and their number).
Screenshots are written to REPORT_DIR (page.png, plot-N.png).
"""

import json
import os
import sys

from PIL import Image, ImageStat
from selenium.webdriver.common.by import By

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import chromium  # noqa: E402

DIR = os.path.abspath(sys.argv[1])


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def shades(path):
    image = Image.open(path).convert("L")
    return ImageStat.Stat(image).stddev[0], len(set(image.getdata()))


with open(os.path.join(DIR, "report.json")) as f:
    summary = json.load(f)["summary"]
stats = summary["trade_stats"]
expected = {
    "ticks": str(summary["ticks"]),
    "net_pnl": "{:+.2f}".format(summary["net_pnl"]),
    "final_equity": "{:.2f} (from {:.2f})".format(summary["final_equity"], summary["starting_balance"]),
    "max_drawdown": "{:.2f} ({:.2f}%)".format(summary["max_drawdown"], summary["max_drawdown_ratio"] * 100),
    "breaker_trips": str(summary["breaker_trips"]),
    "orders": "{} / {} / {}".format(summary["signals"], summary["orders_sent"], summary["fills"]),
    "commissions": "{:.2f}".format(summary["commissions"]),
    "average_win_loss": " / ".join("{:+.2f}".format(stats[avg]) if stats[n] else "-"
                                   for n, avg in (("wins", "average_win"), ("losses", "average_loss"))),
}

driver = chromium.start(DIR, 1200, 1000)
try:
    driver.set_page_load_timeout(20)
    driver.get("file://" + os.path.join(DIR, "report.html"))
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if errors:
        fail("console errors on load: " + json.dumps(errors))
    fetched = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name);")
    if fetched:
        fail("the page fetched " + json.dumps(fetched))
    shown = {e.get_attribute("data-figure"): e.text.strip()
             for e in driver.find_elements(By.CSS_SELECTOR, "[data-figure]")}
    for key, want in expected.items():
        if shown.get(key) != want:
            fail("figure {}: the page shows {!r}, report.json says {!r}".format(key, shown.get(key), want))
    if not shown.get("round_trips", "").startswith(str(stats["trades"])):
        fail("round trips: the page shows {!r}, report.json has {}".format(shown.get("round_trips"), stats["trades"]))
    driver.save_screenshot(os.path.join(DIR, "page.png"))
    plots = driver.find_elements(By.CSS_SELECTOR, "svg[role=img]")
    if len(plots) != 4:
        fail("{} plots on the page, not 4".format(len(plots)))
    for n, plot in enumerate(plots):
        label = plot.get_attribute("aria-label")
        size = plot.size
        if size["width"] < 200 or size["height"] < 100:
            fail("plot {} ({}) is {}x{}".format(n, label, size["width"], size["height"]))
        path = os.path.join(DIR, "plot-{}.png".format(n))
        driver.execute_script("arguments[0].scrollIntoView();", plot)
        plot.screenshot(path)
        spread, count = shades(path)
        if spread < 5 or count < 8:
            fail("plot {} ({}) looks blank: stddev {:.1}, {} shades".format(n, label, spread, count))
        print("plot {} ({}): stddev {:.1f}, {} shades".format(n, label, spread, count), flush=True)
    print("OK report viewed: {} figures, 4 plots".format(len(shown)), flush=True)
finally:
    driver.quit()
