"""Edits of a JSON text at a JSON pointer (RFC 6901): the ``body`` faults of :mod:`.core`."""

from __future__ import annotations

import json
import uuid

from ..core.untrusted import JSON


def _parent(document: JSON, pointer: str) -> tuple[JSON, str]:
    """The container of the value at ``pointer`` in ``document``, and its key (RFC 6901)."""
    if not pointer:
        raise ValueError("the whole document has no parent: use raw to replace it")
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
    node = document
    for token in tokens[:-1]:
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node, tokens[-1]


def edit_json(body: bytes, pointer: str, op: str, value: JSON = None, raw: str | None = None) -> bytes:
    """``body`` (a JSON text) with the value at ``pointer`` replaced, removed or added.

    :param body: the handler's JSON body.
    :param pointer: where (RFC 6901; ``""`` is the whole document, ``-`` the end of an array).
    :param op: ``replace``, ``remove`` or ``add``.
    :param value: the new value (any JSON value).
    :param raw: the new value as a JSON text, put in as it is (instead of ``value``).
    :raises ValueError: the body is not JSON, or ``pointer`` does not lead to a value.
    """
    document = json.loads(body)
    placeholder = f"sandbox-json-{uuid.uuid4().hex}"
    new = placeholder if raw is not None else value
    if op != "remove" and not pointer:
        document = new
    else:
        try:
            parent, key = _parent(document, pointer)
            if isinstance(parent, list):
                index = len(parent) if key == "-" else int(key)
                if op == "add":
                    parent.insert(index, new)
                elif op == "remove":
                    del parent[index]
                else:
                    parent[index] = new
            elif op == "remove":
                del parent[key]
            elif op == "replace" and key not in parent:
                raise KeyError(key)
            else:
                parent[key] = new
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ValueError(f"pointer {pointer!r} does not lead to a value of the answer ({exc!r})") from None
    text = json.dumps(document, separators=(",", ":"))
    if raw is not None:
        text = text.replace(json.dumps(placeholder), raw, 1)
    return text.encode("utf-8", "surrogatepass")
