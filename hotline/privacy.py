"""Caller numbers are personal data (第二十条): normalise, hash, mask and encrypt them.

Decision (also in ``callers/README.md``):

* Redis (throttle) never holds a caller number: keys and audit records use
  :func:`CallerKey.hash` — HMAC-SHA256 with a secret key, so a leaked Redis dump cannot be
  reversed by hashing all 10¹¹ possible numbers.  Audit records add the masked number
  (``138****1111``) for the people who read them.
* The ticket store keeps the hash (indexed: lookups by caller) and the number encrypted with
  Fernet (AES-128-CBC + HMAC) under a key derived from the same secret, because 第十七条
  requires calling the 诉求人 back with the result.
* The secret lives in a file (``key_file`` in config, created with mode 0600 when missing) or
  in the ``HOTLINE_PII_KEY`` environment variable; rotating it orphans old hashes, so do not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

ENV_KEY = "HOTLINE_PII_KEY"
_SEPARATORS = re.compile(r"[\s\-().]")


def normalize(number: str | None) -> str | None:
    """The national form of a caller number, or ``None`` when it is withheld or unusable.

    ``+86 138-0000-1111``, ``008613800001111`` and ``13800001111`` are one caller.  Empty,
    ``anonymous``, ``unknown``, ``Restricted``, anything with letters, and numbers shorter
    than 3 digits are withheld: they are never treated as one caller.
    """
    if number is None:
        return None
    n = _SEPARATORS.sub("", number.strip())
    national = None
    if n.startswith("+86"):
        national = n[3:]
    elif n.startswith("0086"):
        national = n[4:]
    elif n.startswith("86") and len(n) == 13 and _is_mobile(n[2:]):
        national = n[2:]
    elif n.startswith("+"):
        n = n[1:]  # another country: keep its country code
    if national is not None:
        # +86 571 8700 1234 is the landline 0571 8700 1234; mobiles have no trunk prefix.
        n = national if _is_mobile(national) or national.startswith("0") else "0" + national
    if not n.isascii() or not n.isdigit() or len(n) < 3 or set(n) == {"0"}:
        return None
    return n


def _is_mobile(n: str) -> bool:
    return len(n) == 11 and n[0] == "1" and n[1] in "3456789"


def is_withheld(number: str | None) -> bool:
    """True for withheld/anonymous numbers (see :func:`normalize`)."""
    return normalize(number) is None


def mask(number: str | None) -> str:
    """``13800001111`` → ``138****1111``; short numbers keep only their last 2 digits."""
    n = normalize(number)
    if n is None:
        return "withheld"
    if len(n) >= 7:
        return n[:3] + "*" * (len(n) - 7) + n[-4:]
    return "*" * (len(n) - 2) + n[-2:]


def load_secret(path: str | Path | None) -> bytes:
    """The PII secret: ``$HOTLINE_PII_KEY`` (hex), else the key file (created if missing)."""
    env = os.environ.get(ENV_KEY)
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise ValueError(f"{ENV_KEY} must be hex (at least 32 hex digits)") from None
        if len(key) < 16:
            raise ValueError(f"{ENV_KEY} must be at least 16 bytes (32 hex digits)")
        return key
    if path is None:
        raise ValueError(f"no PII key: set {ENV_KEY} or give a key file")
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    text = p.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{p}: the PII key file must hold hex digits") from None
    if len(key) < 16:
        raise ValueError(f"{p}: the PII key must be at least 16 bytes (32 hex digits)")
    return key


class CallerKey:
    """Hashes and encrypts caller numbers with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the PII secret must be at least 16 bytes")
        self._mac = hmac.new(secret, b"hotline-caller-hash", hashlib.sha256).digest()
        enc = hmac.new(secret, b"hotline-caller-encrypt", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(enc))

    @classmethod
    def from_file(cls, path: str | Path | None) -> CallerKey:
        return cls(load_secret(path))

    def hash(self, number: str) -> str:
        """A stable pseudonym for a *normalised* number (24 hex digits, 96 bits)."""
        return hmac.new(self._mac, number.encode(), hashlib.sha256).hexdigest()[:24]

    def encrypt(self, number: str) -> str:
        return self._fernet.encrypt(number.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("caller number cannot be decrypted with this PII key") from None
