"""End to end, the Home panel in real time (issue 22): a real Platypush with mbed (the sandbox's home
fleet), NikDev (a read-only key: what it commits ends in the dead letters) and Pushjet (on the
sandbox's realtime connector). In Debian's Chromium, a device change shows on the panel within the
target (measured in the page: a ``MutationObserver`` stamps the moment the value changes), the
latest value survives a reload, and the health entities (NikDev's outbox, the Pushjet device) show.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import pytest

from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.mbed.fleets import HOME
from platypush_ext.sandbox.nikdev import DEFAULT_DEVICE_ID, DEFAULT_READ_ONLY_KEY, NikdevServer
from platypush_ext.sandbox.pushjet import PushjetServer
from platypush_ext.sandbox.runner import PlatypushProcess
from tests.e2e import panel
from tests.support import wait_until

KEY = "e2e-home-panel-key-3141"
SENSOR, TEMPERATURE = "living-room-sensor", "/3303/0/5700"
#: The targets of issue 22 for changes 1.6 s apart: median and worst, in ms.
P50_TARGET, MAX_TARGET = 250, 600
#: Finds the temperature's value on the panel; the observer stamps each change of its text.
OBSERVE = """
const find = () => {
  const name = [...document.querySelectorAll(".children .entity-container .name")]
    .find((n) => n.textContent.trim() === "Temperature");
  const node = name && name.closest(".entity-container").querySelector(".value-container");
  return node ? node.textContent.replace(/\\s+/g, "") : null;
};
window.__shown = [[Date.now(), find()]];
new MutationObserver(() => {
  const text = find();
  if (text !== window.__shown[window.__shown.length - 1][1]) window.__shown.push([Date.now(), text]);
}).observe(document.body, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="module")
def env(serve: Any, launch: Any) -> dict[str, Any]:
    mbed = serve(MbedServer, api_key=KEY, pull_timeout=2)
    mbed.add_fleet(HOME, announce=False)
    nikdev, pushjet = serve(NikdevServer), serve(PushjetServer)
    remote = PushjetClient(pushjet.base_url)
    device = str(uuid.uuid4())
    remote.subscribe(device, remote.create_service("Health").public_key)
    config = {
        "mbed": {"base_url": mbed.base_url, "api_key": KEY, "channel": "long_poll", "async_timeout": 10},
        "nikdev": {
            "base_url": nikdev.base_url,
            "device_id": DEFAULT_DEVICE_ID,
            "api_key": DEFAULT_READ_ONLY_KEY,  # the server refuses what it pushes: dead letters
            "flush_interval": 1,
            "retries": 0,
        },
        "pushjet": {"base_url": pushjet.base_url, "realtime_url": pushjet.realtime_url, "devices": [device]},
        "entities": {},
    }
    return {"platypush": launch(config, "platypush-home-panel"), "mbed": mbed, "device": device}


def stored(pp: PlatypushProcess, plugin: str) -> dict[str, Any]:
    return {e["external_id"]: e.get("value") for e in pp.run("entities.get", plugins=[plugin])}


def test_the_health_entities_are_saved_and_follow_the_services(env: dict[str, Any]) -> None:
    pp, device = env["platypush"], env["device"]
    health = f"pushjet-{device}"
    wait_until(lambda: stored(pp, "pushjet").get(f"{health}/path") == "realtime", timeout=30, interval=0.5)
    assert stored(pp, "pushjet")[f"{health}/connected"] is True
    wait_until(lambda: stored(pp, "nikdev").get("nikdev-outbox/pending") == 0.0, timeout=30, interval=0.5)
    pp.run("nikdev.commit", values={"temp": 21.5})
    found = wait_until(
        lambda: (s := stored(pp, "nikdev")).get("nikdev-outbox/dead") == 1.0 and s, timeout=30, interval=0.3
    )
    assert found["nikdev-outbox/pending"] == 0.0 and found["nikdev-outbox/reachable"] is True
    assert found["nikdev-outbox/key"] is False  # the read-only key: refused (401/403), the server reachable


def test_entities_scan_republishes_the_health_entities(env: dict[str, Any]) -> None:
    """The panel calls ``entities.scan`` when it opens: it shows a plugin's group only after an update."""
    pp, device = env["platypush"], env["device"]
    wait_until(lambda: "nikdev-outbox" in stored(pp, "nikdev"), timeout=30, interval=0.5)
    with pp.events() as stream:
        scanned = {e["external_id"] for e in pp.run("entities.scan", plugins=["nikdev", "pushjet"])}
        assert {"nikdev-outbox/pending", f"pushjet-{device}/path"} <= scanned
        stream.wait_for(
            lambda e: (
                e.get("type") == "platypush.message.event.entities.EntityUpdateEvent"
                and e["entity"]["external_id"] == "nikdev-outbox/dead"
            )
        )


def _open_home_panel(pp: PlatypushProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    browser.get(pp.url + "/")
    panel.wait(browser).until(EC.url_contains("/register"))
    panel.fill_login_form(browser, ("password", panel.PASSWORD), ("confirm_password", panel.PASSWORD))
    panel.wait(browser).until(lambda d: "/register" not in d.current_url)
    browser.set_window_size(1280, 1800)
    _expand(browser, len(HOME) + 2)  # the fleet, NikDev's outbox, the Pushjet device
    assert browser.find_elements(By.CSS_SELECTOR, ".collapse-toggler")


def _expand(browser: Any, groups: int) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By

    browser.get(browser.current_url.split("#")[0] + "#entities")
    try:
        togglers = panel.wait(browser, 30).until(
            lambda d: len(found := d.find_elements(By.CSS_SELECTOR, ".collapse-toggler")) >= groups and found
        )
    except TimeoutException:
        panel.shot(browser, "30-home-panel-not-grouped")
        raise
    for toggler in togglers:
        browser.execute_script("arguments[0].click()", toggler)


def _stamped(browser: Any, text: str) -> float:
    """When (ms since the epoch, the page's clock: this machine's) the value first showed ``text``."""
    from selenium.common.exceptions import TimeoutException

    try:
        return panel.wait(browser).until(
            lambda d: next((at for at, shown in d.execute_script("return window.__shown") if shown == text), 0)
        )
    except TimeoutException:
        panel.shot(browser, "30-home-panel-not-shown")
        raise AssertionError(f"{text} never shown: {browser.execute_script('return window.__shown')}") from None


def test_a_device_change_shows_on_the_panel_within_the_target_and_after_a_reload(
    env: dict[str, Any], browser: Any
) -> None:
    pp, mbed, device = env["platypush"], env["mbed"], env["device"]
    wait_until(lambda: stored(pp, "mbed").get(f"{SENSOR}{TEMPERATURE}") == 21.5, timeout=30, interval=0.3)
    _open_home_panel(pp, browser)
    panel.wait(browser).until(lambda d: panel.shown(d).get(f"{SENSOR} / Temperature") == "21.5°C")
    browser.execute_script(OBSERVE)
    latencies = []
    for i in range(8):  # 8 changes 1.6 s apart, as the benchmark's
        text = f"{22 + i / 4:g}"
        sent = time.time() * 1000
        mbed.set_value(SENSOR, TEMPERATURE, text)
        seen = _stamped(browser, f"{text}°C")
        latencies.append(seen - sent)
        time.sleep(max(0.0, sent / 1000 + 1.6 - time.time()))
    panel.shot(browser, "30-home-panel-live")
    print(f"device change → shown on the panel, ms: {[round(x) for x in latencies]}")
    assert statistics.median(latencies) <= P50_TARGET and max(latencies) <= MAX_TARGET, latencies
    browser.refresh()  # what the panel loads comes from the database: the latest value was saved
    _expand(browser, len(HOME) + 2)
    expected = {
        f"{SENSOR} / Temperature": "23.75°C",
        "NikDev outbox / Pending entries": "0entries",
        f"Pushjet device {device[:8]} / Path": "realtime",
    }
    panel.wait(browser, 20).until(lambda d: all(panel.shown(d).get(k) == v for k, v in expected.items()))
    panel.shot(browser, "31-home-panel-health")
    shown = panel.shown(browser)
    assert shown.items() >= expected.items(), shown
    assert "NikDev outbox / Dead letters" in shown and f"Pushjet device {device[:8]} / Connected" in shown, shown
