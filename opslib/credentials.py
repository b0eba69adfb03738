"""Secret references and redaction.

Parameter files and notebook parameters hold only *references* to secrets:

* ``env:NAME`` — the value of environment variable NAME;
* ``keyring:service/user`` — the value stored in the system keyring;
* ``prompt`` (or ``prompt:Label``) — asked on the terminal without echo.

:func:`resolve` turns a reference into its value and registers the value with the process-wide
redactor, so that every transcript line, log line, evidence file and error message that passes
through :func:`redact` has it replaced by ``[REDACTED]`` — in plain, base64, UTF-16LE and
URL-encoded form.
"""

from __future__ import annotations

import base64
import getpass
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .errors import SecretUnavailable

MASK = "[REDACTED]"
_REFERENCE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|keyring:[^/\s]+/[^\s]+|prompt(:.*)?)$")

_secrets: set[str] = set()


def is_reference(value: object) -> bool:
    """True when ``value`` is a secret reference rather than a literal."""
    return isinstance(value, str) and bool(_REFERENCE.match(value))


def resolve(reference: str, *, purpose: str = "", env: Mapping[str, str] | None = None) -> str:
    """Return the secret that ``reference`` points to, and register it for redaction.

    A literal (anything that is not a reference) is refused: secrets are never written into
    parameter files or notebooks. ``env``: an ``env:NAME`` reference is looked up there first (one
    fleet host's own environment, never the process's), then in ``os.environ``.
    """
    if not is_reference(reference):
        raise SecretUnavailable(
            "(literal)" if reference else "(empty)",
            f"{purpose + ': ' if purpose else ''}expected a reference such as env:NAME, "
            "keyring:service/user or prompt, not a literal value",
        )
    kind, _, rest = reference.partition(":")
    if kind == "env":
        value = (env or {}).get(rest) or os.environ.get(rest)
        if not value:
            raise SecretUnavailable(reference, f"environment variable {rest} is not set or empty")
    elif kind == "keyring":
        service, _, user = rest.partition("/")
        try:
            import keyring  # imported lazily: only needed for this kind of reference

            value = keyring.get_password(service, user)
        except Exception as exc:  # keyring backends raise many kinds of errors
            raise SecretUnavailable(reference, f"keyring lookup failed ({type(exc).__name__})") from None
        if not value:
            raise SecretUnavailable(reference, f"no keyring entry for service {service!r}, user {user!r}")
    else:  # prompt
        label = rest or purpose or "secret"
        try:
            value = getpass.getpass(f"{label}: ")
        except (EOFError, OSError):
            raise SecretUnavailable(reference, "no terminal to prompt on; use env:NAME instead") from None
        if not value:
            raise SecretUnavailable(reference, "empty answer")
    register(value)
    return value


def register(value: str) -> None:
    """Add a secret value to the redactor (values shorter than 4 characters are too common to mask)."""
    if value and len(value) >= 4 and value not in _secrets:
        _secrets.add(value)
        _patterns.clear()  # rebuilt on the next redaction


# One compiled alternation of every form of every secret, longest first, so that redaction is one pass
# over the text however many secrets a long-lived process has registered (one-time PFX passwords add up).
_patterns: dict[str, Any] = {}


def _text_pattern() -> re.Pattern[str]:
    if "text" not in _patterns:
        needles = sorted({f for s in _secrets for f in forms(s)}, key=len, reverse=True)
        _patterns["text"] = re.compile("|".join(map(re.escape, needles)))
    return _patterns["text"]  # type: ignore[no-any-return]


def _bytes_pattern() -> tuple[re.Pattern[bytes], dict[bytes, bytes]]:
    if "bytes" not in _patterns:
        masks: dict[bytes, bytes] = {}
        for secret in _secrets:
            for form in forms(secret):
                for enc in ("utf-8", "utf-16-le"):
                    try:
                        needle = form.encode(enc)
                    except UnicodeEncodeError:
                        continue
                    if needle:
                        masks.setdefault(needle, MASK.encode(enc))
        needles = sorted(masks, key=len, reverse=True)
        _patterns["bytes"] = (re.compile(b"|".join(map(re.escape, needles))), masks)
    return _patterns["bytes"]  # type: ignore[no-any-return]


def forms(value: str) -> list[str]:
    """The encodings of a secret that redaction and the secret scan look for."""
    raw = value.encode("utf-8")
    out = {
        value,
        base64.b64encode(raw).decode("ascii"),
        base64.b64encode(value.encode("utf-16-le")).decode("ascii"),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        value.encode("utf-16-le").decode("latin-1"),
    }
    return sorted((f for f in out if f), key=len, reverse=True)


def redact(text: str) -> str:
    """Replace every registered secret (in each of its :func:`forms`) in ``text`` with ``[REDACTED]``."""
    if not _secrets or not text:
        return text
    return _text_pattern().sub(MASK, text)


def redact_bytes(data: bytes) -> bytes:
    """Byte-level redaction for raw transcripts: UTF-8, UTF-16LE and base64 forms."""
    if not _secrets or not data:
        return data
    pattern, masks = _bytes_pattern()
    return pattern.sub(lambda m: masks[m.group(0)], data)


def registered() -> frozenset[str]:
    """The values currently registered (for tests and the evidence secret scan)."""
    return frozenset(_secrets)


# --- the PFX password: the one rule ------------------------------------------------------------------

PFX_PASSWORD_MIN = 8
PFX_PASSWORD_RULE = (
    f"a PFX password has at least {PFX_PASSWORD_MIN} characters, every one printable (letters, digits, spaces "
    "and any punctuation — commas, quotes, % and ! included — in any script; no control characters such "
    "as tabs or line breaks)"
)
# Why only these two conditions: the operator's password never reaches the server (step 3 exports under a
# one-time password and re-protects the PFX here, opslib.certs.pfx.reprotect_pfx), so cmd.exe and certutil
# quoting no longer apply; PKCS#12 encodes the password as UTF-16 (RFC 7292 appendix B.1), as Windows'
# import does; a control character is refused because nobody can type it into the Windows import dialog.


def pfx_password_problem(password: str) -> str:
    """What is wrong with a PFX password under :data:`PFX_PASSWORD_RULE` ("": nothing); never contains it."""
    if len(password) < PFX_PASSWORD_MIN:
        return f"the PFX password must have at least {PFX_PASSWORD_MIN} characters"
    if not password.isprintable():
        return "the PFX password holds a control character (a tab, a line break, …): every character must be printable"
    return ""
