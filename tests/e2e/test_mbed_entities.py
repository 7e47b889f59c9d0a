"""End to end: mbed endpoints on a real Platypush's dashboard (its entities engine, database and
``/ws/events``), against the mbed sandbox's home fleet; then the same Home panel in a real browser."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
import requests

from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.mbed.fleets import HOME
from platypush_ext.sandbox.runner import PlatypushProcess
from tests.e2e import panel

KEY = "e2e-mbed-entities-key-2718"
UPDATE = "platypush.message.event.entities.EntityUpdateEvent"


@pytest.fixture(scope="module")
def env(serve, launch):
    mbed = serve(MbedServer, api_key=KEY, pull_timeout=2)
    mbed.add_fleet(HOME, announce=False)  # registered before Platypush started, as a fleet found at start-up
    config = {
        "mbed": {"base_url": mbed.base_url, "api_key": KEY, "channel": "long_poll", "async_timeout": 10},
        "entities": {},
    }
    return {"platypush": launch(config, "platypush-mbed-entities"), "mbed": mbed}


def entities(pp: PlatypushProcess) -> dict[str, dict[str, Any]]:
    """The mbed plugin's entities in Platypush's database, by external id."""
    return {e["external_id"]: e for e in pp.run("entities.get", plugins=["mbed"])}


def wait_entities(pp: PlatypushProcess, check: Any, timeout: float = 20.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = entities(pp)
        if check(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"entities not as expected within {timeout} s: {sorted(found)}")
        time.sleep(0.3)


def entity_execute(pp: PlatypushProcess, entity_id: int, action: str, **args: Any) -> dict[str, Any]:
    """``entities.execute`` as the dashboard sends it (its ``action`` argument clashes with ``execute``'s)."""
    answer = requests.post(
        pp.url + "/execute",
        json={"type": "request", "action": "entities.execute", "args": {"id": entity_id, "action": action, **args}},
        headers={"Authorization": f"Bearer {pp.token}"},
        timeout=30,
    )
    return answer.json()["response"]


def test_the_fleet_appears_with_types_units_and_values(env):
    pp = env["platypush"]
    expected = {
        "living-room-sensor/3303/0/5700": ("temperature_sensor", "value", 21.5, "°C"),
        "living-room-sensor/3304/0/5700": ("humidity_sensor", "value", 45.0, "%"),
        "living-room-sensor/3/0/9": ("battery", "value", 87.0, "%"),
        "living-room-sensor/3301/0/5700": ("illuminance_sensor", "value", 320.0, "lx"),
        "hall-light/3311/0/5850": ("switch", "state", False, None),
        "hall-light/3311/0/5851": ("dimmer", "value", 60.0, "%"),
        "kitchen-plug/3312/0/5850": ("switch", "state", True, None),
        "kitchen-plug/3328/0/5700": ("power_sensor", "value", 42.5, "W"),
        "entrance-presence/3302/0/5500": ("presence_sensor", "value", False, None),
        "garden-barometer/3323/0/5700": ("pressure_sensor", "value", 101325.0, "Pa"),
    }
    found = wait_entities(pp, lambda f: all(f.get(i, {}).get(c) == v for i, (_, c, v, _) in expected.items()))
    for entity_id, (type_, _, _, unit) in expected.items():
        assert found[entity_id]["type"] == type_ and found[entity_id].get("unit") == unit, entity_id
        assert found[entity_id]["reachable"] is True
    devices = {d["name"] for d in HOME}
    assert {i for i, e in found.items() if e["type"] == "device"} == devices
    light = found["hall-light"]
    assert {found[i]["external_id"] for i in found if found[i]["parent_id"] == light["id"]} == {
        "hall-light/3311/0/5850",
        "hall-light/3311/0/5851",
    }
    assert "living-room-sensor/3/0/0" not in found  # the manufacturer name is no entity


def test_a_device_change_updates_the_entity_live(env):
    pp, mbed = env["platypush"], env["mbed"]
    wait_entities(pp, lambda f: "living-room-sensor/3303/0/5700" in f)
    with pp.events() as stream:
        time.sleep(0.3)
        mbed.set_value("living-room-sensor", "/3303/0/5700", "24.75")
        event = stream.wait_for(
            lambda e: (
                e.get("type") == UPDATE
                and e["entity"]["external_id"] == "living-room-sensor/3303/0/5700"
                and e["entity"]["value"] == 24.75
            )
        )
    assert event["entity"]["plugin"] == "mbed" and event["entity"]["unit"] == "°C"
    found = entities(pp)
    assert found["living-room-sensor/3303/0/5700"]["value"] == 24.75
    assert found["living-room-sensor/3304/0/5700"]["value"] == 45.0  # the others unchanged


def test_a_deregistration_marks_the_device_unreachable(env):
    pp, mbed = env["platypush"], env["mbed"]
    wait_entities(pp, lambda f: f.get("garden-barometer", {}).get("reachable") is True)
    mbed.deregister("garden-barometer")
    found = wait_entities(pp, lambda f: f["garden-barometer"]["reachable"] is False)
    assert found["garden-barometer/3323/0/5700"]["reachable"] is False
    assert found["kitchen-plug"]["reachable"] is True
    mbed.register("garden-barometer")
    wait_entities(pp, lambda f: f["garden-barometer/3323/0/5700"]["reachable"] is True)


def test_toggle_on_a_switch_entity_changes_the_device(env):
    pp, mbed = env["platypush"], env["mbed"]
    found = wait_entities(pp, lambda f: f.get("kitchen-plug/3312/0/5850", {}).get("state") is not None)
    plug = found["kitchen-plug/3312/0/5850"]
    before = plug["state"]
    answer = entity_execute(pp, plug["id"], "toggle")  # what the dashboard calls
    assert not answer.get("errors"), answer
    resource = mbed.devices["kitchen-plug"].resources["/3312/0/5850"]
    assert resource.value == (b"0" if before else b"1")
    wait_entities(pp, lambda f: f["kitchen-plug/3312/0/5850"]["state"] is (not before))
    dimmer = found["hall-light/3311/0/5851"]
    assert not entity_execute(pp, dimmer["id"], "set", value=35).get("errors")
    assert mbed.devices["hall-light"].resources["/3311/0/5851"].value == b"35"
    wait_entities(pp, lambda f: f["hall-light/3311/0/5851"]["value"] == 35.0)
    failed = pp.execute("mbed.toggle", entity="living-room-sensor/3303/0/5700")
    assert failed["errors"] == ["living-room-sensor Temperature (living-room-sensor/3303/0/5700) is read-only"]


def test_entities_scan_republishes_the_fleet(env):
    pp = env["platypush"]
    scanned = pp.run("entities.scan", plugins=["mbed"])
    assert {e["external_id"] for e in scanned} >= {d["name"] for d in HOME}
    assert requests.get(pp.url, timeout=5).status_code == 200


def test_the_home_panel_shows_the_devices_and_a_switch_works_in_the_browser(env, browser):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    pp, mbed = env["platypush"], env["mbed"]
    mbed.set_value("living-room-sensor", "/3303/0/5700", "22.5")
    wait_entities(pp, lambda f: f.get("living-room-sensor/3303/0/5700", {}).get("value") == 22.5)
    browser.get(pp.url + "/")
    panel.wait(browser).until(EC.url_contains("/register"))
    panel.fill_login_form(browser, ("password", panel.PASSWORD), ("confirm_password", panel.PASSWORD))
    panel.wait(browser).until(lambda d: "/register" not in d.current_url)
    browser.set_window_size(1280, 1500)  # the whole fleet in the screenshot
    browser.get(pp.url + "/#entities")
    devices = panel.wait(browser).until(
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, ".collapse-toggler")) == len(HOME)
            and d.find_elements(By.CSS_SELECTOR, ".collapse-toggler")
        )
    )
    for toggler in devices:
        browser.execute_script("arguments[0].click()", toggler)
    expected = {
        "living-room-sensor / Temperature": "22.5°C",
        "living-room-sensor / Humidity": "45%",
        "living-room-sensor / Battery": "87%",
        "kitchen-plug / Power meter": "42.5W",
        "kitchen-plug / Power switch": "on"
        if mbed.devices["kitchen-plug"].resources["/3312/0/5850"].value == b"1"
        else "off",
        "hall-light / Light": "off",
        "garden-barometer / Pressure": "101325Pa",
    }
    with contextlib.suppress(TimeoutException):  # the assertion below says what is missing
        panel.wait(browser).until(lambda d: all(panel.shown(d).get(k) == v for k, v in expected.items()))
    panel.shot(browser, "20-mbed-home-panel")
    assert panel.shown(browser).items() >= expected.items(), panel.shown(browser)
    light = browser.find_element(
        By.XPATH,
        "//*[contains(@class,'entity-container')][.//*[@class='name' and text()='Light']]//*[@class='power-switch']",
    )
    light.click()
    panel.wait(browser).until(lambda d: mbed.devices["hall-light"].resources["/3311/0/5850"].value == b"1")
    panel.wait(browser).until(lambda d: panel.shown(d).get("hall-light / Light") == "on")
    mbed.set_value("living-room-sensor", "/3303/0/5700", "23.5")  # and live, without a reload
    panel.wait(browser).until(lambda d: panel.shown(d).get("living-room-sensor / Temperature") == "23.5°C")
    panel.shot(browser, "21-mbed-home-panel-after-toggle")
