"""Recordings are personal data (第二十条): encrypted at rest with AES-256-GCM.

The key is derived (HMAC-SHA256, label ``hotline-recording-encrypt``) from a secret read
like the PII secret (:func:`hotline.privacy.load_secret` style): ``$HOTLINE_RECORDING_KEY``
(hex) or ``recording.key_file`` (created 0600 when missing).  Each file gets a fresh random
96-bit nonce; the recording's id is bound in as associated data, so a file renamed to
another call's name does not decrypt.  File layout: ``HREC1\\0`` + nonce + ciphertext+tag.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENV_KEY = "HOTLINE_RECORDING_KEY"
MAGIC = b"HREC1\0"
NONCE_BYTES = 12


class RecordingKeyError(ValueError):
    """No usable key, or a file that does not decrypt with it."""


def load_secret(path: str | Path | None) -> bytes:
    """The recording secret: ``$HOTLINE_RECORDING_KEY`` (hex), else the key file (created
    0600 when missing), read like the PII secret (:func:`hotline.privacy.load_secret`)."""
    from hotline.privacy import load_secret as load

    try:
        return load(path, env_var=ENV_KEY)
    except ValueError as exc:
        raise RecordingKeyError(str(exc).replace("PII", "recording")) from None


class RecordingKey:
    """Encrypts and decrypts recording files with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise RecordingKeyError("the recording secret must be at least 16 bytes")
        key = hmac.new(secret, b"hotline-recording-encrypt", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: str | Path | None) -> RecordingKey:
        return cls(load_secret(path))

    def encrypt(self, data: bytes, rec_id: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, MAGIC + rec_id.encode())

    def decrypt(self, blob: bytes, rec_id: str) -> bytes:
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise RecordingKeyError("not an encrypted recording")
        nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(
                nonce, blob[len(MAGIC) + NONCE_BYTES :], MAGIC + rec_id.encode()
            )
        except InvalidTag:
            raise RecordingKeyError(f"recording {rec_id} does not decrypt with this key") from None
