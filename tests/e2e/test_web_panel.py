"""End to end in a real browser: Debian's Chromium, driven by selenium, in the web panel of a real
Platypush with all four plugins (configured as by the demo) against the sandbox servers.

A new user's walk: register the first user, log in, run ``pushjet.send`` from the Execute tab's
argument form, find the four plugins in Extensions, watch a Pushjet message arrive in the
Events view. Each step leaves a screenshot in ``run/screenshots/`` (not committed).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
from pathlib import Path

import pytest

import platypush
from platypush_ext.demo import DemoContext, parts
from platypush_ext.glue import webpanel
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox import servers
from platypush_ext.sandbox.runner import PlatypushProcess

pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

from tests.e2e.panel import PASSWORD, fill_login_form, shot, wait  # noqa: E402

COMPONENTS = Path(platypush.__file__).parent / "components.json.gz"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def env(serve, launch):
    ctx = DemoContext(servers={name: serve(cls) for name, cls in servers().items()})
    config: dict = {}
    for part in parts():
        config.update(part.configure(ctx))
    before = digest(COMPONENTS)
    pp = launch(config, "platypush-web")
    return {"platypush": pp, "ctx": ctx, "config": config, "components_before": before}


def listing(pp: PlatypushProcess, action: str) -> dict:
    output = pp.run(action)
    return output if isinstance(output, dict) else json.loads(output)


def test_listed_right_after_start_with_nothing_written_into_platypush(env):
    """No refresh_cache, no restart: /execute's inspect listings have the plugins and events."""
    pp = env["platypush"]
    plugins = listing(pp, "inspect.get_all_plugins")
    events = listing(pp, "inspect.get_all_events")
    for name in webpanel.PLUGINS:
        assert plugins[name]["actions"] and plugins[name]["doc_url"] is None, name
    assert plugins["pushjet"]["actions"]["send"]["args"]["message"]["required"] is True
    assert {f"{c.__module__}.{c.__name__}" for c in webpanel.event_classes()} <= set(events)
    # not from the package's cache file (a reinstall replaces it): that one lacks them, and is untouched
    on_disk = json.loads(gzip.decompress(COMPONENTS.read_bytes()))["items"]
    assert not set(webpanel.PLUGINS) & set(on_disk["plugins"]), "components.json.gz lists the bundle already"
    assert digest(COMPONENTS) == env["components_before"]


def test_a_failed_execute_answers_success_false_and_the_sentence(env):
    """What the README says a failure answers."""
    answer = env["platypush"].execute("pushjet.send", service="demo", message="x", importance=11)
    assert answer == {
        "output": {"success": False},
        "errors": ["importance must be from 1 (least) to 5 (most important), got 11"],
    }


def test_register_the_first_user_and_log_in(env, browser):
    url = env["platypush"].url
    browser.get(url + "/")
    wait(browser).until(EC.url_contains("/register"))
    fill_login_form(browser, ("password", PASSWORD), ("confirm_password", PASSWORD))
    wait(browser).until(lambda d: "/register" not in d.current_url)
    wait(browser).until(EC.visibility_of_element_located((By.XPATH, "//*[normalize-space()='Execute']")))
    shot(browser, "01-registered")
    browser.get(url + "/logout")  # and log in as the user just registered
    wait(browser).until(EC.url_contains("/login"))
    fill_login_form(browser, ("password", PASSWORD))
    wait(browser).until(lambda d: "/login" not in d.current_url)
    wait(browser).until(EC.visibility_of_element_located((By.XPATH, "//*[normalize-space()='Execute']")))
    assert browser.get_cookie("session_token")
    shot(browser, "02-logged-in")


def argument_fields(driver) -> dict:
    """The Execute tab's argument inputs, by name, with whether each is marked required."""
    fields = {}
    for arg in driver.find_elements(By.CSS_SELECTOR, ".args-list .arg"):
        field = arg.find_element(By.CSS_SELECTOR, "input")
        fields[field.get_attribute("placeholder")] = (field, bool(arg.find_elements(By.CSS_SELECTOR, ".required-flag")))
    return fields


def run_and_read(driver, kind: str) -> str:
    """Press Run; the text of the answer's ``Output`` or ``Error`` box."""
    driver.find_element(By.CSS_SELECTOR, ".run-btn").click()
    box = wait(driver).until(EC.visibility_of_element_located((By.CSS_SELECTOR, f"section.response .output.{kind}")))
    return box.text


def test_execute_pushjet_send_from_its_argument_form(env, browser):
    browser.get(env["platypush"].url + "/#execute")
    action = wait(browser).until(EC.element_to_be_clickable((By.CSS_SELECTOR, ".autocomplete-container input")))
    action.send_keys("pushjet.")  # the autocomplete offers the plugin's actions: pick send
    wait(browser).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, ".autocomplete .item[data-item='pushjet.send']"))
    ).click()
    wait(browser).until(lambda d: argument_fields(d))
    fields = argument_fields(browser)
    assert list(fields) == ["message", "title", "link", "importance", "service", "secret_key"]
    assert [name for name, (_, required) in fields.items() if required] == ["message"]
    run = browser.find_element(By.CSS_SELECTOR, ".run-btn")
    assert not run.is_enabled(), "Run must stay disabled while the required message is empty"
    fields["message"][0].click()  # shows the argument's help next to the form
    wait(browser).until(
        lambda d: any(e.is_displayed() for e in d.find_elements(By.XPATH, "//*[normalize-space()='the text.']"))
    )
    shot(browser, "03-execute-form")

    fields["message"][0].send_keys("Hello from the web panel")
    fields["service"][0].send_keys("demo")
    fields["importance"][0].send_keys("11")
    wait(browser).until(lambda d: run.is_enabled())
    assert "importance must be from 1 (least) to 5 (most important), got 11" in run_and_read(browser, "error")
    shot(browser, "04-execute-error")
    for toast in browser.find_elements(By.CSS_SELECTOR, ".notifications .notification"):
        toast.click()  # the error's pop-up: dismissed
    fields["importance"][0].send_keys(Keys.BACKSPACE, Keys.BACKSPACE, "2")
    assert json.loads(run_and_read(browser, "response")) == {"sent": True}
    output = browser.find_element(By.CSS_SELECTOR, "section.response")
    browser.execute_script("arguments[0].scrollIntoView(false)", output)
    shot(browser, "05-execute-result")


def listed(driver, css: str) -> list[str]:
    """The texts of the visible items ``css`` of the Extensions page's documentation."""
    return sorted(e.text for e in driver.find_elements(By.CSS_SELECTOR, f"section.doc {css}") if e.text)


def shows_plugin(driver, name: str, actions: list[str]) -> bool:
    """The page shows this plugin's actions and documentation (its configuration example), not the previous one's."""
    docs = [e.get_attribute("textContent") for e in driver.find_elements(By.CSS_SELECTOR, "section.doc .doc-content")]
    return (
        listed(driver, "li.action") == actions
        and bool(docs)
        and all(re.search(rf"^{name}:$", doc, re.M) for doc in docs)
    )


def test_extensions_list_each_plugin_with_its_actions_and_events(env, browser):
    browser.get(env["platypush"].url + "/#extensions")
    search = wait(browser).until(EC.element_to_be_clickable((By.CSS_SELECTOR, ".extensions-container header input")))
    plugins = listing(env["platypush"], "inspect.get_all_plugins")
    for name in webpanel.PLUGINS:
        search.clear()
        search.send_keys(name)
        browser.find_element(By.CSS_SELECTOR, f".item[data-name='{name}']").click()
        actions = sorted(f"{name}.{action}" for action in plugins[name]["actions"])
        # the first page's ~150 plugin icons are fetched from a CDN the closed network refuses: be patient
        wait(browser, 30).until(lambda d, name=name, actions=actions: shows_plugin(d, name, actions))
        assert listed(browser, "li.event") == sorted(plugins[name]["events"]) and plugins[name]["events"]
        assert browser.find_element(By.CSS_SELECTOR, "section.doc a.title").get_attribute("href") is None
        heading = [h for h in browser.find_elements(By.CSS_SELECTOR, "section.doc .actions h3") if h.is_displayed()]
        browser.execute_script("arguments[0].scrollIntoView()", heading[0])  # its actions and events in view
        shot(browser, f"06-extensions-{name}")


def test_events_view_shows_the_message_the_listener_posted(env, browser):
    pp, config = env["platypush"], env["config"]
    browser.get(pp.url + "/#application")
    tabs = wait(browser).until(
        lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, ".tab") if t.text.strip() == "Events"]
    )
    tabs[0].click()
    wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".events-container")))
    time.sleep(0.5)  # the view records events from now on
    # straight to the Pushjet server, not through Platypush: only the listener can bring it in
    secret = config["pushjet"]["services"]["demo"]["secret"]
    PushjetClient(config["pushjet"]["base_url"]).send(secret, "Seen in the Events view", title="web panel")

    def arrived(driver) -> list:
        return [
            e
            for e in driver.find_elements(By.CSS_SELECTOR, ".events-container .event .type")
            if e.text == "platypush_ext.pushjet.events.PushjetMessageEvent"
        ]

    wait(browser, 20).until(arrived)[-1].click()  # expand the newest one, then its arguments
    wait(browser).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, ".events-container .object.renderer .compact"))
    ).click()
    wait(browser).until(
        lambda d: "Seen in the Events view" in d.find_element(By.CSS_SELECTOR, ".events-container").text
    )
    shot(browser, "07-events")
