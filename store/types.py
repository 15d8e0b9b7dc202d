"""Column types shared by the models."""

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator

from store.crypto import is_sealed, open_text


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend.

    SQLite keeps no offset, so values are normalised to UTC on the way in and marked UTC on
    the way out; naive datetimes are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: opsbot stores only timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StoredJSON(TypeDecorator):
    """A JSON object kept as text exactly as written, so that what is stored is what the
    audit chain hashed: a `str` is taken as already encoded (`store.events.encode_details`)
    and bound unchanged, a dict is encoded here; reading decodes with `decode_details`."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | dict[str, Any] | None, dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def process_result_value(self, value: str | None, dialect) -> dict[str, Any] | None:
        return None if value is None else decode_details(value)


def decode_details(text: str) -> dict[str, Any]:
    """The object that `text`, as stored in a StoredJSON column, encodes, its sealed values
    opened (store.events.encode_details; an erased customer's read as crypto.ERASED)."""
    details = json.loads(text)
    return {key: open_text(value) if is_sealed(value) else value
            for key, value in details.items()}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the one clock store/ reads)."""
    return datetime.now(UTC)
