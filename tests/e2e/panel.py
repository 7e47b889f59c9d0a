"""Driving Platypush's web panel in Debian's Chromium with selenium (``test_web_panel.py``,
``test_mbed_entities.py``; the browser is the ``browser`` fixture of ``tests/e2e/conftest.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = Path(__file__).resolve().parents[2] / "run" / "screenshots"
USER, PASSWORD = "first-user", "correct horse battery staple"
# Root needs --no-sandbox; the background-networking flags keep Chromium off the (closed) network.
CHROMIUM_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic --no-first-run "
    "--disable-background-networking --disable-component-update --disable-sync --window-size=1280,900"
)


def wait(driver: Any, timeout: float = 15) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout)


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def dismiss_install_prompt(driver: Any) -> None:
    """The panel's first visit asks 'install this application locally?': Cancel."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "button.cancel-btn"):
        if button.is_displayed():
            button.click()


def fill_login_form(driver: Any, *fields: tuple[str, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    username = wait(driver).until(EC.element_to_be_clickable((By.NAME, "username")))
    dismiss_install_prompt(driver)
    username.send_keys(USER)
    for name, value in fields:
        driver.find_element(By.NAME, name).send_keys(value)
    wait(driver).until(_submitted)


def _submitted(driver: Any) -> bool:
    """Press the form's submit button, unless the install prompt (which may open late, on a loaded
    machine after the form was filled) covers it: then Cancel it, and the next try presses."""
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.common.by import By

    try:
        driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    except ElementClickInterceptedException:
        dismiss_install_prompt(driver)
        return False
    return True


def shown(driver: Any) -> dict[str, str]:
    """The Home panel's entities: ``{"<device> / <name>": "<value><unit>" or "on"/"off"}``."""
    from selenium.webdriver.common.by import By

    found = {}
    for device in driver.find_elements(By.CSS_SELECTOR, ".groups-container .entity-container-wrapper.with-children"):
        name = device.find_element(By.CSS_SELECTOR, ".name").get_attribute("textContent").strip()
        for child in device.find_elements(By.CSS_SELECTOR, ".children .entity-container"):
            switch = child.find_elements(By.CSS_SELECTOR, ".power-switch input")
            value = child.find_elements(By.CSS_SELECTOR, ".value-container")
            text = value[0].get_attribute("textContent") if value else ""
            text = ("on" if switch[0].is_selected() else "off") if switch else text
            label = child.find_element(By.CSS_SELECTOR, ".name").get_attribute("textContent").strip()
            found[f"{name} / {label}"] = "".join(text.split())
    return found
