"""The distribution: shims and manifests, the built wheel, registration in a real
Platypush ``Config`` (the sandbox command line: ``tests/e2e/test_sandbox_cli.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIMS = sorted(p.parent for p in (ROOT / "platypush" / "plugins").glob("*/manifest.json"))


def test_there_are_shims():
    assert "pushjet" in [s.name for s in SHIMS]


@pytest.mark.parametrize("shim", SHIMS, ids=lambda p: p.name)
def test_manifests_are_valid_identical_and_name_importable_events(shim):
    name = shim.name
    registration = json.loads((shim / "manifest.json").read_text())
    beside_class = json.loads((ROOT / "platypush_ext" / name / "manifest.json").read_text())
    assert registration == beside_class
    manifest = registration["manifest"]
    assert manifest["package"] == f"platypush.plugins.{name}" and manifest["type"] == "plugin"
    for dotted in manifest["events"]:
        module, _, cls = dotted.rpartition(".")
        assert hasattr(__import__(module, fromlist=[cls]), cls), dotted
    source = (shim / "__init__.py").read_text()
    assert f"from platypush_ext.{name}.plugin import {name.capitalize()}Plugin" in source


def test_no_platypush_package_init_is_shipped():
    assert not (ROOT / "platypush" / "__init__.py").exists()
    assert not (ROOT / "platypush" / "plugins" / "__init__.py").exists()


def test_wheel_contents(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("platypush_ext-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "platypush/__init__.py" not in names and "platypush/plugins/__init__.py" not in names
    for shim in SHIMS:
        for file in ("__init__.py", "manifest.json"):
            assert f"platypush/plugins/{shim.name}/{file}" in names
            assert f"platypush_ext/{shim.name}/manifest.json" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/")) or "__pycache__" in n]
    assert "platypush_ext/py.typed" in names  # its type hints are for its users' checkers too


def test_installed_bundle_is_current_and_uninstallable():
    """The bundle installed in this environment (what e2e tests run) matches the
    source tree, and pip's RECORD lists every shim, so `pip uninstall` removes them."""
    dist = metadata.distribution("platypush-ext")
    recorded = {str(f) for f in dist.files or []}
    for shim in SHIMS:
        for file in ("__init__.py", "manifest.json"):
            path = f"platypush/plugins/{shim.name}/{file}"
            assert path in recorded
            installed = Path(dist.locate_file(path)).read_bytes()
            assert installed == (shim / file).read_bytes(), f"{path} is stale: run `make install`"
    for source in (ROOT / "platypush_ext").rglob("*.py"):
        relative = source.relative_to(ROOT).as_posix()
        assert relative in recorded, f"{relative} is not installed: run `make install`"
        assert Path(dist.locate_file(relative)).read_bytes() == source.read_bytes(), (
            f"{relative} is stale: run `make install`"
        )


def test_config_section_registers_the_plugin(tmp_path):
    """A `pushjet:` section is picked up by Platypush's Config (manifest discovery)."""
    config = tmp_path / "config.yaml"
    config.write_text(f"workdir: {tmp_path}/w\ncachedir: {tmp_path}/c\npushjet:\n  base_url: http://127.0.0.1:1/\n")
    code = (
        "import sys; from platypush.config import Config; Config.init(sys.argv[1]); "
        "print(Config.get_plugins().get('pushjet'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(config)], capture_output=True, text=True, cwd=tmp_path, check=True
    ).stdout
    assert "'base_url': 'http://127.0.0.1:1/'" in out


def test_config_example_is_valid_for_platypush(tmp_path):
    """config.example.yaml parses, registers its plugins and its hooks name importable events."""
    text = (ROOT / "config.example.yaml").read_text()
    text = text.replace("<device uuid>", "0f1e2d3c-4b5a-4697-8899-aabbccddeeff")
    text = text.replace("<32-character service secret>", "0123456789abcdef0123456789abcdef")
    text = text.replace("<nikdev device id>", "01234567-89ab-cdef-0123-456789abcdef")
    text = text.replace("<nikdev api key>", "fedcba98-7654-3210-fedc-ba9876543210")
    for placeholder, value in (
        ("<mbed api key>", "ak_example"),
        ("<gett api key>", "t_api_key"),
        ("<gett account email>", "me@example.org"),
        ("<gett account password>", "pass-word"),
    ):
        text = text.replace(placeholder, value)
    assert "<" not in text.replace("<angle brackets>", "").replace("<bind>", "").replace("<port>", ""), "a placeholder"
    config = tmp_path / "config.yaml"
    config.write_text(f"workdir: {tmp_path}/w\ncachedir: {tmp_path}/c\n" + text)
    code = (
        "import sys; from platypush.config import Config; Config.init(sys.argv[1]); "
        "print(sorted(Config.get_plugins())); print(sorted(Config.get_event_hooks())); "
        "print(sorted(Config.get_procedures())); from platypush.context import get_plugin; "
        "print([type(get_plugin(name)).__name__ for name in sys.argv[2:]])"
    )
    names = [shim.name for shim in SHIMS]
    out = subprocess.run(
        [sys.executable, "-c", code, str(config), *names], capture_output=True, text=True, cwd=tmp_path, check=True
    ).stdout
    # each plugin accepts its example section
    assert out.splitlines()[3] == str([f"{name.capitalize()}Plugin" for name in names])
    for shim in SHIMS:
        assert f"'{shim.name}'" in out.splitlines()[0], f"{shim.name} has no section in config.example.yaml"
    assert "OnUrgentPushjetMessage" in out and "notify" in out
    import yaml

    for key, hook in yaml.safe_load(text).items():
        if key.startswith("event.hook."):
            module, _, cls = hook["if"]["type"].rpartition(".")
            assert hasattr(__import__(module, fromlist=[cls]), cls)
