"""Helpers of the Ge.tt tests: raw HTTP calls to the sandbox (no client)."""

from __future__ import annotations

import json
from typing import Any

import requests

from platypush_ext.sandbox.gett import GettServer

TIMEOUT = 10


def login(server: GettServer) -> dict[str, Any]:
    # pygett sends its JSON body without a Content-Type: the server must accept it (§2)
    body = json.dumps({"apikey": server.apikey, "email": server.email, "password": server.password})
    answer = requests.post(server.base_url + "users/login", data=body, timeout=TIMEOUT)
    assert answer.status_code == 200
    return answer.json()


def create_file(server: GettServer, token: str, filename: str = "myfile.txt") -> tuple[str, dict[str, Any]]:
    share = requests.post(
        server.base_url + "shares/create", params={"accesstoken": token}, data="null", timeout=TIMEOUT
    ).json()
    file = requests.post(
        f"{server.base_url}files/{share['sharename']}/create",
        params={"accesstoken": token},
        json={"filename": filename},
        timeout=TIMEOUT,
    ).json()
    return share["sharename"], file
