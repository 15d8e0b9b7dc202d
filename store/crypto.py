"""Encryption of customer data at rest: the one place that seals and opens values.

Envelope encryption: each contact has its own data key (a row of `data_keys`, wrapped by the
first master key of OPSBOT_DATA_KEYS, store/keys.py); what belongs to them is sealed with it,
so that destroying that one key (`erase_data_key`) makes everything about them unreadable for
good, backups included. Data that is not yet tied to a contact (a raw webhook body at intake)
is sealed with a key derived from the master key itself (`m.<master id>`).

A sealed value is text: `enc1:<key id>:<nonce + AES-256-GCM ciphertext, URL-safe base64>`
(raw bodies, in a binary column: the same without base64).
The column types below seal on the way in and open on the way out, so the rest of opsbot
reads and writes plain values: a `Personal` string carries the data key it is sealed with,
other strings are sealed with the master-derived key, an already `Sealed` value is stored as
is. A value whose key was destroyed opens as ERASED. Values written before encryption (no
prefix) are read as they are until `opsbot keys rotate` seals them.
"""

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, LargeBinary, Text, bindparam, text
from sqlalchemy.types import TypeDecorator

from store import keys

PREFIX = "enc1:"
_BYTES_PREFIX = PREFIX.encode()
ERASED = "[erased]"
_NONCE = 12
_MASTER_DERIVED = "m."  # key ids of keys derived from a master key (no row of their own)


class SealBroken(ValueError):
    """A sealed value was changed in the database: it cannot be opened."""


class Personal(str):
    """Text about one customer, sealed with their data key (`key_id`) when stored."""

    key_id: str | None

    def __new__(cls, value: str, key_id: str | None) -> "Personal":
        text = super().__new__(cls, value)
        text.key_id = key_id
        return text


class PersonalDoc(dict):
    """A JSON document about one customer, sealed with their data key when stored."""

    def __init__(self, document: dict, key_id: str | None) -> None:
        super().__init__(document)
        self.key_id = key_id


class Sealed(str):
    """A value sealed already (by `seal`): stored as it is."""


def personal(value: Any, key_id: str | None) -> Any:
    """`value` (text or a JSON object) marked as belonging to the customer with data key
    `key_id`; None is returned as it is."""
    if isinstance(value, str):
        return Personal(value, key_id)
    return PersonalDoc(value, key_id) if isinstance(value, dict) else value


# --- keys -------------------------------------------------------------------------------------

_lock = threading.Lock()
# key id -> (cipher or None when destroyed, when this process looked it up). A key destroyed
# by another process stops opening here once its entry is older than KEY_CACHE_SECONDS.
_data_keys: dict[str, tuple[AESGCM | None, float]] = {}
KEY_CACHE_SECONDS = 600
# The database whose rows are being read (the column types cannot see the session): set by
# store.db.Database for each transaction; else the last one opened in this process.
_reading: ContextVar[Engine | None] = ContextVar("opsbot_reading", default=None)
_last: list[Engine] = []


@contextmanager
def reading(engine: Engine) -> Iterator[None]:
    """Data keys met while this block reads are looked up in `engine`'s database."""
    token = _reading.set(engine)
    try:
        yield
    finally:
        _reading.reset(token)


def attach(engine: Engine) -> None:
    """Makes `engine` the database where keys are looked up outside a `reading` block."""
    _last[:] = [engine]


def new_data_key() -> tuple[str, str]:
    """A fresh data key: (its id, the key wrapped by the primary master key, as stored).
    Its cipher is remembered in this process from now on."""
    key_id = secrets.token_hex(8)
    raw = AESGCM.generate_key(bit_length=256)
    with _lock:
        _data_keys[key_id] = (AESGCM(raw), time.monotonic())
    return key_id, wrap(raw)


def wrap(raw: bytes) -> str:
    """A data key wrapped by the primary master key: `<master id>:<base64>`."""
    current = keys.current()
    nonce = secrets.token_bytes(_NONCE)
    wrapped = AESGCM(current.masters[current.primary]).encrypt(nonce, raw, b"data key")
    return f"{current.primary}:{_b64(nonce + wrapped)}"


def unwrap(wrapped: str) -> bytes:
    """The data key in `wrapped`; KeysError when its master key is not configured."""
    master_id, _, body = wrapped.partition(":")
    master = keys.current().masters.get(master_id)
    if master is None:
        raise keys.KeysError(f"data keys wrapped by master key {master_id} cannot be opened: "
                             "it is not in OPSBOT_DATA_KEYS (keep old keys there until "
                             "`opsbot keys rotate` has run)")
    blob = _unb64(body)
    return AESGCM(master).decrypt(blob[:_NONCE], blob[_NONCE:], b"data key")


def forget_data_key(key_id: str) -> None:
    """Drops this process's copy of a data key (it is looked up again when next needed)."""
    with _lock:
        _data_keys.pop(key_id, None)


def _cipher(key_id: str) -> AESGCM | None:
    if key_id.startswith(_MASTER_DERIVED):
        return _master_derived(key_id)
    with _lock:
        cached = _data_keys.get(key_id)
    if cached is not None and time.monotonic() - cached[1] < KEY_CACHE_SECONDS:
        return cached[0]
    cipher = _load(key_id)
    with _lock:
        _data_keys[key_id] = (cipher, time.monotonic())
    return cipher


_FIND_KEY = text("SELECT wrapped FROM data_keys WHERE id = :id")  # the DataKey model's table


_FIND_KEYS = text("SELECT id, wrapped FROM data_keys WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True))


def load_keys(key_ids: Iterable[str | None]) -> None:
    """Looks up, in one query, those of `key_ids` this process does not hold: a page of rows
    about many customers then opens with one look-up, not one per customer."""
    now = time.monotonic()
    with _lock:
        missing = sorted({key_id for key_id in key_ids if key_id and not key_id.startswith(
            _MASTER_DERIVED) and (key_id not in _data_keys
                                  or now - _data_keys[key_id][1] >= KEY_CACHE_SECONDS)})
    engine = _reading.get() or (_last[0] if _last else None)
    if not missing or engine is None:
        return
    with engine.execution_options(readonly=True).connect() as connection:
        found = connection.execute(_FIND_KEYS, {"ids": missing}).all()
    with _lock:
        for row in found:
            _data_keys[row.id] = (AESGCM(unwrap(row.wrapped)) if row.wrapped else None, now)


def _load(key_id: str) -> AESGCM | None:
    engine = _reading.get() or (_last[0] if _last else None)
    if engine is None:
        return None
    # Read-only: on SQLite a deferred BEGIN that never waits for the writer.
    with engine.execution_options(readonly=True).connect() as connection:
        found = connection.execute(_FIND_KEY, {"id": key_id}).first()
    return AESGCM(unwrap(found.wrapped)) if found is not None and found.wrapped else None


_derived: dict[tuple[str, bytes], AESGCM] = {}


def _master_derived(key_id: str) -> AESGCM | None:
    master_id = key_id.removeprefix(_MASTER_DERIVED)
    master = keys.current().masters.get(master_id)
    if master is None:
        raise keys.KeysError(f"values sealed with master key {master_id} cannot be opened: it "
                             "is not in OPSBOT_DATA_KEYS")
    cipher = _derived.get((master_id, master))
    if cipher is None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"opsbot shared data").derive(master)
        cipher = _derived[(master_id, master)] = AESGCM(derived)
    return cipher


def shared_key_id() -> str:
    """The key that seals data not tied to a contact: derived from the primary master key."""
    return _MASTER_DERIVED + keys.current().primary


# --- values -----------------------------------------------------------------------------------


def seal(plain: bytes, key_id: str | None) -> str:
    """`plain` sealed with data key `key_id` (None: the shared key)."""
    key_id, blob = _encrypt(plain, key_id)
    return f"{PREFIX}{key_id}:{_b64(blob)}"


def seal_bytes(plain: bytes, key_id: str | None) -> bytes:
    """`plain` sealed as bytes: `enc1:<key id>:` and the nonce and ciphertext as they are
    (no base64: a raw webhook body is the intake's hot path)."""
    key_id, blob = _encrypt(plain, key_id)
    return b"%s%s:%s" % (_BYTES_PREFIX, key_id.encode(), blob)


def _encrypt(plain: bytes, key_id: str | None) -> tuple[str, bytes]:
    key_id = key_id or shared_key_id()
    cipher = _cipher(key_id)
    if cipher is None:
        raise keys.KeysError(f"data key {key_id} was destroyed: nothing more can be sealed "
                             "with it")
    nonce = secrets.token_bytes(_NONCE)
    return key_id, nonce + cipher.encrypt(nonce, plain, None)


def open_sealed(value: str) -> tuple[bytes | None, str]:
    """(the plain bytes, the key id) of a sealed value; (None, key id) when its key was
    destroyed."""
    key_id, _, body = value[len(PREFIX):].partition(":")
    return _decrypt(key_id, _unb64(body))


def open_bytes(value: bytes) -> bytes | None:
    """The plain bytes of a `seal_bytes` value; None when its key was destroyed."""
    key_id, _, blob = value[len(_BYTES_PREFIX):].partition(b":")
    return _decrypt(key_id.decode(), blob)[0]


def _decrypt(key_id: str, blob: bytes) -> tuple[bytes | None, str]:
    cipher = _cipher(key_id)
    if cipher is None:
        return None, key_id
    try:
        return cipher.decrypt(blob[:_NONCE], blob[_NONCE:], None), key_id
    except InvalidTag:
        raise SealBroken(f"a value sealed with key {key_id} fails its authentication: it was "
                         "changed in the database") from None


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def key_of(value: str) -> str:
    """The id of the key a sealed value is sealed with."""
    return value[len(PREFIX):].partition(":")[0]


def seal_text(value: str, key_id: str | None) -> Sealed:
    return Sealed(seal(value.encode(), key_id))


def open_text(value: str) -> str:
    """The text of a stored value (sealed or written before encryption)."""
    if not is_sealed(value):
        return value
    plain, key_id = open_sealed(value)
    return Personal(ERASED if plain is None else plain.decode(), key_id)


def seal_json(document: Any, key_id: str | None) -> Sealed:
    return seal_text(_dumps(document), key_id)


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def open_json(value: str | None) -> Any:
    """The document of a stored JSON value ({} when its key was destroyed), marked with its
    key so that it is sealed with the same key when written back."""
    if value is None:
        return None
    if not is_sealed(value):
        return json.loads(value)
    plain, key_id = open_sealed(value)
    document = {} if plain is None else json.loads(plain)
    return PersonalDoc(document, key_id) if isinstance(document, dict) else document


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- column types -----------------------------------------------------------------------------


class SecretText(TypeDecorator):
    """Text sealed at rest: a `Personal` value with its data key, other text with the shared
    key; read back as `Personal` text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        if value is None or isinstance(value, Sealed):
            return value
        return seal(value.encode(), getattr(value, "key_id", None))

    def process_result_value(self, value: str | None, dialect) -> str | None:
        return None if value is None else open_text(value)


class SecretJSON(TypeDecorator):
    """A JSON document sealed as a whole: a `PersonalDoc` with its data key, another
    document with the shared key."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> str | None:
        if value is None or isinstance(value, Sealed):
            return value
        return seal(_dumps(value).encode(), getattr(value, "key_id", None))

    def process_result_value(self, value: str | None, dialect) -> Any:
        return open_json(value)


class SecretBytes(TypeDecorator):
    """Bytes (a raw webhook body) sealed with the shared key; b"" when the key is gone."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect) -> bytes | None:
        return None if value is None else seal_bytes(value, None)

    def process_result_value(self, value: bytes | None, dialect) -> bytes | None:
        if value is None or not value.startswith(_BYTES_PREFIX):
            return value
        plain = open_bytes(value)
        return b"" if plain is None else plain
