"""What may be shown: passwords masked in URLs and free text, one-line error messages."""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"^(\s*[^:/?#@\s]+://[^:/?#@]*:)(.*)@")
"""`scheme://user:` then, greedily, everything up to the last `@` (the password may hold
an unencoded `/`, `#`, `?`, `:` or `@`, which URL parsers mistake for later parts)."""


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***`.

    Does not rely on URL parsing: everything between `scheme://user:` and the last `@` is
    masked, so a password with unencoded special characters is masked too (at worst more
    than the password, never less)."""
    return _URL_PASSWORD.sub(r"\1***@", url, count=1)


def mask_secrets(text: str) -> str:
    """Any `scheme://user:password@` in free text with the password masked."""
    return re.sub(r"(\w[\w+.-]*://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, secrets masked (the type name when empty);
    for log lines that must stay one line per event."""
    text = str(exc).strip()
    return mask_secrets(text.splitlines()[0]) if text else type(exc).__name__
