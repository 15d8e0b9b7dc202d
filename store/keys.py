"""The keys that protect customer data: master keys (OPSBOT_DATA_KEYS) that wrap each
contact's data key, and the index key (OPSBOT_INDEX_KEY) behind blind indexes and the audit
chain's hashes.

OPSBOT_DATA_KEYS is a comma-separated list of `ID:KEY` entries, KEY being 32 random bytes in
URL-safe base64: the first entry wraps new data keys, every entry unwraps. OPSBOT_INDEX_KEY is
32 random bytes in URL-safe base64; it is never rotated (every blind index would change).
The process configures its keys once (`configure`), from its settings, before it opens the
database.
"""

import base64
import hmac
import re
import secrets
from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class KeysError(Exception):
    """The keys are missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Keys:
    masters: dict[str, bytes]  # key id -> key, in the order given: the first wraps
    index: bytes

    @property
    def primary(self) -> str:
        return next(iter(self.masters))

    @cached_property
    def audit(self) -> bytes:
        """The key of the audit chain's HMACs, derived from the index key."""
        return _derive(self.index, b"opsbot audit chain")

    @cached_property
    def blind(self) -> bytes:
        return _derive(self.index, b"opsbot blind index")

    @cached_property
    def survey(self) -> bytes:
        """The key of the survey buttons' payload MACs, derived from the index key."""
        return _derive(self.index, b"opsbot survey payload")


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(key)


def parse_keys(data_keys: str | None, index_key: str | None) -> Keys:
    """The keys written in OPSBOT_DATA_KEYS and OPSBOT_INDEX_KEY; KeysError when one is
    missing or malformed."""
    if not data_keys or not data_keys.strip():
        raise KeysError("OPSBOT_DATA_KEYS is not set (create keys with `opsbot keys generate`)")
    if not index_key or not index_key.strip():
        raise KeysError("OPSBOT_INDEX_KEY is not set (create keys with `opsbot keys generate`)")
    masters: dict[str, bytes] = {}
    for entry in data_keys.split(","):
        key_id, _, encoded = entry.strip().partition(":")
        if not _KEY_ID.fullmatch(key_id) or not encoded:
            raise KeysError("OPSBOT_DATA_KEYS: each entry is ID:KEY (ID of letters, digits, "
                            "_ or -), separated by commas")
        if key_id in masters:
            raise KeysError(f"OPSBOT_DATA_KEYS: the key id {key_id} appears twice")
        masters[key_id] = _decode(encoded, f"OPSBOT_DATA_KEYS ({key_id})")
    return Keys(masters=masters, index=_decode(index_key.strip(), "OPSBOT_INDEX_KEY"))


def _decode(encoded: str, name: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(encoded.encode() + b"=" * (-len(encoded) % 4))
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeysError(f"{name}: a key is {KEY_BYTES} random bytes in URL-safe base64 "
                        "(create one with `opsbot keys generate`)")
    return key


def new_key() -> str:
    """A fresh random key in URL-safe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def new_master_entry() -> str:
    """A fresh `ID:KEY` entry for OPSBOT_DATA_KEYS (the id names the day it was made and
    a random part)."""
    return f"k{secrets.token_hex(4)}:{new_key()}"


_configured: Keys | None = None


def configure(keys: Keys | None) -> None:
    """Makes `keys` this process's keys (None forgets them)."""
    global _configured
    _configured = keys


def current() -> Keys:
    """This process's keys; KeysError when none were configured."""
    if _configured is None:
        raise KeysError("no data keys are configured (OPSBOT_DATA_KEYS, OPSBOT_INDEX_KEY)")
    return _configured


def blind_index(value: str) -> str:
    """The keyed hash by which a phone number or WhatsApp user id is looked up without
    storing it (the same value always gives the same index; without the key, nothing can be
    learnt from it)."""
    digest = hmac.digest(current().blind, value.encode(), "sha256")  # C: 10x hmac.new's speed
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
