"""Secrets masked wherever they could appear: URLs, log lines, error texts; framework-free."""

from __future__ import annotations

import re
import threading
from typing import Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "SECRET_NAMES", "Redactor"]

MASK = "***"

#: Parameter and header names whose values are always secrets.
SECRET_NAMES = frozenset(
    {
        "secret",
        "secret_key",
        "api_key",
        "apikey",
        "x-api-key",
        "password",
        "token",
        "accesstoken",
        "access_token",
        "refreshtoken",
        "refresh_token",
        "authorization",
        "proxy-authorization",
        "sig",
        "signature",
    }
)
#: A signed URL's signature wherever it appears in free text (``...?sig=<value>``): masked by its
#: name, as the values of a long run's many signed URLs are not kept (each new one rebuilt the pattern).
_SIGNATURE_RE = re.compile(r"(?<![\w-])((?:sig|signature)=)[^&\s\"'<>]+", re.IGNORECASE)


class Redactor:
    """Masks secrets in URLs and free text.

    It knows secret *names* (query parameters such as ``secret`` or ``api_key``)
    and secret *values* (registered with :meth:`add`, e.g. a token obtained at
    run time); every occurrence of a known value is masked wherever it appears.
    """

    def __init__(self, secrets: Iterable[str | None] = ()):
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._longest_first: tuple[str, ...] = ()
        for value in secrets:
            self.add(value)

    def add(self, value: object) -> None:
        """Register a secret value (short or empty values are ignored)."""
        if not isinstance(value, str) or len(value) < 4:
            return
        with self._lock:
            forms = {value, quote(value, safe=""), quote_plus(value, safe="")} - self._values  # as in URLs
            if forms:
                self._values |= forms
                self._longest_first = tuple(sorted(self._values, key=len, reverse=True))

    def add_from(self, mapping: Mapping[str, object] | None) -> None:
        """Register the values of the secret-named keys of ``mapping``."""
        if not isinstance(mapping, Mapping):
            return
        for key, value in mapping.items():
            if str(key).lower() in SECRET_NAMES:
                self.add(value)

    def text(self, text: object) -> str:
        """``text`` with every known secret value and every URL signature (``sig=…``) masked."""
        text = _SIGNATURE_RE.sub(r"\1" + MASK, str(text))
        # only the secrets the text holds go into the pattern: a client that learnt many (a service
        # created per call, a token per login) does not pay for all of them on every line
        present = [value for value in self._longest_first if value in text]
        if not present:
            return text
        if len(present) == 1:
            return text.replace(present[0], MASK)
        return re.sub("|".join(re.escape(v) for v in present), MASK, text)

    def url(self, url: str) -> str:
        """``url`` with secret query parameters and known secret values masked."""
        parts = urlsplit(url)
        if parts.query:
            query = [
                (k, MASK if k.lower() in SECRET_NAMES else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ]
            parts = parts._replace(query=urlencode(query, safe="*"))
        if parts.password:
            parts = parts._replace(netloc=parts.netloc.replace(parts.password, MASK))
        return self.text(urlunsplit(parts))
