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
from dataclasses import dataclass
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
    elif n.startswith("86") and len(n) == 13 and is_mobile(n[2:]):
        national = n[2:]
    elif n.startswith("+"):
        n = n[1:]  # another country: keep its country code
    if national is not None:
        # +86 571 8700 1234 is the landline 0571 8700 1234; mobiles have no trunk prefix.
        n = national if is_mobile(national) or national.startswith("0") else "0" + national
    if not n.isascii() or not n.isdigit() or len(n) < 3 or set(n) == {"0"}:
        return None
    return n


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


# ---- numbers in free text (transcripts, summaries, addresses) ------------------------------
_DIGIT_CHARS = "0-9\uff10-\uff19零〇一二三四五六七八九幺两"
_DIGIT_VALUE = {c: str(i) for i, c in enumerate("零一二三四五六七八九")}
_DIGIT_VALUE |= {str(i): str(i) for i in range(10)} | {"〇": "0", "幺": "1", "两": "2"}
_DIGIT_VALUE |= {chr(0xFF10 + i): str(i) for i in range(10)}
_GROUPED_RUN = re.compile(f"[{_DIGIT_CHARS}]{{3,}}(?:[ \\-－—–·、,，.．][{_DIGIT_CHARS}]{{3,}})*")
"""Groups of 3+ digits joined across one separator (138 0571 2345, 138，0571，2345)."""
_LOOSE_RUN = re.compile(f"[{_DIGIT_CHARS}](?:[\\- ]*[{_DIGIT_CHARS}])*")
"""Digits joined by any spaces or dashes (1 3 8 0 5 7 1 …, 138-0571-2345)."""
_ID_LAST = "Xx叉"
MASK_MIN_DIGITS = 7
"""Runs of this many digits or more are masked in free text."""
MASK_LAST_ONLY = 15
"""Runs of this many digits or more (identity, bank card numbers) keep only their last four."""


@dataclass(frozen=True, slots=True)
class NumberRun:
    """Digits spoken or written in a row: ``text[start:end]``, their values in ``digits``."""

    start: int
    end: int
    digits: str


def _run(text: str, start: int, end: int) -> NumberRun:
    digits = "".join(_DIGIT_VALUE.get(c, "") for c in text[start:end])
    if len(digits) == 17 and end < len(text) and text[end] in _ID_LAST:
        end, digits = end + 1, digits + "X"  # identity number ending in X / 叉
    return NumberRun(start, end, digits)


def number_runs(text: str, loose: bool = False) -> list[NumberRun]:
    """Runs of seven or more digits in ``text``: 一三八零五七一二三四五, 138 0571 2345, 幺三八…,
    identity numbers ending in X/叉.  Groups of three or more digits join across one separator;
    shorter groups (三个月, 2单元) never make a phone or identity number.  ``loose`` also
    joins digits across any spaces and dashes (what masking looks for)."""
    spans = sorted(m.span() for m in _GROUPED_RUN.finditer(text))
    if loose:
        spans = sorted([*spans, *(m.span() for m in _LOOSE_RUN.finditer(text))])
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    runs = [_run(text, start, end) for start, end in merged]
    return [r for r in runs if len(r.digits) >= MASK_MIN_DIGITS]


def is_mobile(digits: str) -> bool:
    """A mainland mobile number (11 digits, 13x–19x)."""
    return len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789"


def is_long_distance(digits: str) -> bool:
    """A landline with its area code (0571 8700 1234, 010 …)."""
    return 10 <= len(digits) <= 12 and digits[0] == "0" and digits[1] != "0"


def _is_phone(digits: str) -> bool:
    with_86 = digits[:2] == "86" and is_mobile(digits[2:])
    return is_mobile(digits) or with_86 or is_long_distance(digits)


def mask_text(text: str, phones: bool = True) -> str:
    """The one masking of numbers in free text (第二十条), spoken or written, full-width too:

    * 15 or more digits (identity and bank card numbers) keep only their last four, as
      digits: ``身份证三三零…一二三叉`` → ``身份证**************123X``;
    * 7 to 14 digits (phones, with or without area code or 86, and any other long number)
      keep their first three and last four, as digits: ``13805712345`` and
      ``一三八零五七一二三四五`` → ``138****2345``; with ``phones=False`` phone numbers are
      left as they are;
    * shorter numbers (12345, 三个月, 2单元) are left alone."""
    out: list[str] = []
    pos = 0
    for run in number_runs(text, loose=True):
        d = run.digits
        if len(d) >= MASK_LAST_ONLY:
            masked = "*" * (len(d) - 4) + d[-4:]
        elif not phones and _is_phone(d):
            continue
        else:
            masked = d[:3] + "*" * (len(d) - 7) + d[-4:]
        out += [text[pos : run.start], masked]
        pos = run.end
    out.append(text[pos:])
    return "".join(out)


def load_secret(path: str | Path | None, env_var: str = ENV_KEY) -> bytes:
    """The PII secret: ``$HOTLINE_PII_KEY`` (or ``env_var``; hex), else the key file
    (created 0600 if missing)."""
    name = env_var
    env = os.environ.get(name)
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise ValueError(f"{name} must be hex (at least 32 hex digits)") from None
        if len(key) < 16:
            raise ValueError(f"{name} must be at least 16 bytes (32 hex digits)")
        return key
    if path is None:
        raise ValueError(f"no PII key: set {name} or give a key file")
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
