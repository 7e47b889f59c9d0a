"""The upstream Pushjet server's static files, served at ``/robots.txt``, ``/favicon.ico`` and under ``/static/``.

Both files are those of ``Pushjet/Pushjet-Server-Api`` at ``7ddb7df`` (``static/``), copyright (c) 2015,
IOException, under its BSD 2-clause licence.
"""

from __future__ import annotations

import base64
import time
from email.utils import formatdate

ROBOTS_TXT = (
    b"User-agent: * \nDisallow: /message \nDisallow: /gcm \nDisallow: /listen\nDisallow: /service\nDisallow: /version\n"
)

FAVICON_ICO = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAYAAABzenr0AAAABHNCSVQICAgIfAhkiAAAAAlwSFlzAAABbgAAAW4BhFBfJAAAABl0"
    "RVh0U29mdHdhcmUAd3d3Lmlua3NjYXBlLm9yZ5vuPBoAAABSdEVYdENvcHlyaWdodABDQyBBdHRyaWJ1dGlvbi1TaGFyZUFsaWtl"
    "IGh0dHA6Ly9jcmVhdGl2ZWNvbW1vbnMub3JnL2xpY2Vuc2VzL2J5LXNhLzMuMC9eg1q8AAAFdElEQVRYhaWXfWyTZRDAf/e0ZesY"
    "AwQiYwqbAtFgnEIUEDUwJVEBEQNqBHUm/iGiJgajIAgEMcSPgIFoYowBAUlkEYEAhURgzghBAsiIYgKCH8BAicDWdv16n/OPvu3a"
    "sdoWLmnyvu1zd7+75557rkKBMnL6igrTnpgoasepai1otSq9QEH1EujvVjkC7JZEdNv+wKLWQuxKvgVjHl05AG9igaLPgvpR0KRT"
    "QFH3XVBUNamkGlbRNU6UxQd3zmu5KoDR05b5jXrno85rIH5rFZGk064gIPWchkCxYVGW+YOJdxsbF0UKBrjv8eWV6vFuQvXuDke4"
    "xouBQBUrqB5WD5MPbJ7/V16Ae59cUWvUbLOqVR2RXAtEWv+MGHlk/5Z5zZn+TObL2Gkf90e92xSpEnHZRBAE3Pfk9+5HyPhN3CWp"
    "Z8HjMUwaX0tFuR9EqqyjO0ZPXFLVJcDY+lWl1sgmI1RlGrlaiFsHV/LZe9OZ+sidtIWiCIIYqXSQzaOnLfNfAaCR2NuIGdlVJMVC"
    "3DOihhWLpjJ4UD82Bn7qpM+IRDg8J6sGxjz1+QCvxE+gUqqoFLinXdbEA2OGMvelB/F4DGfPX6Z+9lqisXhaX1UVbLsTk8EHd85r"
    "MQA+cRaA8SeDz72n+TIx8cFhvPXyeDweg+NYlqzcSTTmZOmLiAimzFPCAgB5ePq6irBGWlBb5oZYbHUDMHn8MF6tvz/Fxedf7WPt"
    "xgM59EVRG/aXxvp7I0QmCpQhpsO4KKKCSlJPRFFNReCmXQRR6NunnEl1tzJjyojUtnLk2BnWbz7kLu5SXxDpHmkvmeAVNeNUkpGI"
    "SCqgLiHK/CXcdGNvBlf34bYh13P7LZX07pkuaACCoShLP9mFVUX4/yDUUOe1RmpFcRd2QPhLfdw8sDdDBl3HkOo+DKnuy8ABvdIp"
    "ziUfrfqe8xeCybrIn8laryA1mlzLqOE3cO/wgQyt6cMNlRWYfN46yaXWCLv3Hs+bSdXU1lDjFaEChZISH7OfH02P8pKinGZKazCS"
    "Ci0/RLID9DSpI1I3qvqanAPpjldMx/SCtAJ9v917ChF4bkotPXtcHUhbMJo+HZ1rKkcmLhsRToKQcJRA02/Uz9nCui1H3QZSfAbc"
    "0AvKhConDUhzKh2DBvSiblQ13f0+zpwvaKLKkmA4VtTdIUaOeMXIHrW8UFHu4/036qi4hjpoC8Vw40t2yTzbYaxnt/HF2YpIuC2U"
    "0OWrf+TcP6GrBwhG3Ajd6P8nE4qEfL6S7Sbw5YxWQdYgyP4jLby4MMDqjc20RxJFAwTD8Y4LLA+EIGsaG2YFDYDHsYsFwiAai1s2"
    "BI4xc+EOfjlxoSiA1mCUrFs0J4SGunm6LQZ3INm57pkWDMtFRFLn9O9/Q7z5wR627jleMEC4PX7lVd4FhIj5sLFh1rk0AEBC40sQ"
    "3Z/ZLBxr+WT9IQJNv2U5sla53Ba9MgNZjSgXhNnbIyRLUzppgMbVz0cSdHtM0dOZRgBWrj1I04E/047iCcv7n/2ATZd0UtpCsZwd"
    "z4U46+B5IhB4NU2fNRU3rn7iHGomCHSCUJat+pETf1wEwHEsB38+x9c7jmUBBENxcrZd5bSgD+1rmHkmUycLAGDXmqebvcY3XIWm"
    "TCOxuMPST/fSFooRSyS75BffNHPsxD9YqwS+O45jlexmYxQRENnngbuaGl452tlfzvt2bP2qUo/45orldYUy1AIwfFh/4nGH5l/P"
    "oyj9riuj3O/j5OmLXQ2qIVE+9F+OLs1Me0EAHSAb+ns1nvxzqto9a8ZLzYVJr5kzYkiVLyQRfSdV7bmk4Ilj7LQN5R5/bALoOEHv"
    "sEoNaC/X8SXglCqHRewejUa2NzbMChZi9z98cAYiy1kjIgAAAABJRU5ErkJggg=="
)

#: name: (content type, bytes)
FILES = {
    "robots.txt": ("text/plain; charset=utf-8", ROBOTS_TXT),
    "favicon.ico": ("image/vnd.microsoft.icon", FAVICON_ICO),
}

#: the files' modification time in the upstream snapshot (its commit's date)
MODIFIED = 1477005939
#: Flask's ``SEND_FILE_MAX_AGE_DEFAULT`` (12 hours)
MAX_AGE = 43200


def headers(content_type: str) -> dict[str, str]:
    """The headers of a static file's answer (Flask's ``send_from_directory``, without its ``ETag``).

    :param content_type: the file's type.
    """
    return {
        "Content-Type": content_type,
        "Last-Modified": formatdate(MODIFIED, usegmt=True),
        "Cache-Control": f"public, max-age={MAX_AGE}",
        "Expires": formatdate(time.time() + MAX_AGE, usegmt=True),
    }
