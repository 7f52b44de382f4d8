"""Debian's headless Chromium through chromedriver, as the browser tests drive it."""

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def start(out_dir, width, height):
    """A headless Chromium with its profile and chromedriver's log in out_dir, the browser's
    console log kept (driver.get_log("browser")), no first-run or background network."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size={},{}".format(width, height), "--user-data-dir=" + out_dir + "/chromium-profile",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver", log_output=out_dir + "/chromedriver.log"),
                            options=options)
