"""Rows written with one plain INSERT, then handed to the session as if loaded.

For the rows that processing a message creates (contact, message, task, outbox), the ORM's
own insert (a unit-of-work flush) costs several times more than the INSERT itself. The
instance returned here is built as a query builds what it loads (its values put in place,
no attribute events: the mapped constructor firing one per column cost as much again as
the INSERT). It is persistent: later changes to it are flushed as UPDATEs, as usual.
As with the ORM's own inserts, a rollback (of a savepoint too) takes the instances inserted
within it out of the session, so that nothing stale stays there.
"""

from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Column, Insert, Table, event, insert
from sqlalchemy.orm import (
    ClassManager,
    Session,
    SessionTransaction,
    class_mapper,
    make_transient_to_detached,
)

from store.upsert import insert_ignore

Model = TypeVar("Model")


def insert_row(session: Session, model: type[Model], values: dict[str, Any], *,
               skip_conflict: bool = False) -> Model | None:
    """Inserts one row of `model` (columns missing from `values` get their defaults) and
    returns it, in the session; None when `skip_conflict` and a unique key already holds it.
    """
    table: Table = model.__table__  # type: ignore[attr-defined]
    row = {**_defaults(table), **values}
    found = session.connection().execute(_statement(session, table, skip_conflict), row).first()
    if found is None:
        return None
    instance = _manager(model).new_instance()
    instance.__dict__.update(row, **found._asdict())
    make_transient_to_detached(instance)  # in the database already: nothing left to write
    session.add(instance)
    _remember(session, instance)
    return instance


_STATEMENTS: dict[tuple[Table, bool, str], Insert] = {}  # built once: building costs too


def _statement(session: Session, table: Table, skip_conflict: bool) -> Insert:
    key = (table, skip_conflict, session.get_bind().dialect.name)
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = insert_ignore(session, table) if skip_conflict else insert(table)
        statement = _STATEMENTS[key] = statement.returning(*table.primary_key.columns)
    return statement


def _defaults(table: Table) -> dict[str, Any]:
    # A column without a default is NULL, as the ORM writes it; a callable default (list,
    # utcnow) gives a fresh value for each row.
    values = {}
    for column in _columns(table):
        default = column.default
        if default is None:
            values[column.key] = None
        elif default.is_callable:
            values[column.key] = default.arg(None)
        elif default.is_scalar:
            values[column.key] = default.arg
    return values


@cache
def _manager(model: type[Model]) -> ClassManager:
    # class_mapper configures the mappers first, as the mapped constructor would
    return class_mapper(model).class_manager


@cache
def _columns(table: Table) -> tuple[Column, ...]:
    return tuple(column for column in table.columns if not column.primary_key)


_INSERTED = "store.rows.inserted"  # session.info: (innermost transaction, instance) pairs


def _remember(session: Session, instance: object) -> None:
    innermost = session.get_nested_transaction() or session.get_transaction()
    inserted = session.info.get(_INSERTED)
    if not inserted or not _within(inserted[0][0], _root(innermost)):  # a new transaction
        inserted = session.info[_INSERTED] = []
        if not event.contains(session, "after_soft_rollback", _expunge_rolled_back):
            event.listen(session, "after_soft_rollback", _expunge_rolled_back)
    inserted.append((innermost, instance))


def _expunge_rolled_back(session: Session, rolled_back: SessionTransaction) -> None:
    kept = []
    for transaction, instance in session.info.get(_INSERTED, ()):
        if not _within(transaction, rolled_back):
            kept.append((transaction, instance))
        elif instance in session:
            session.expunge(instance)
    session.info[_INSERTED] = kept


def _within(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None and transaction is not outer:
        transaction = transaction.parent
    return transaction is outer


def _root(transaction: SessionTransaction) -> SessionTransaction:
    while transaction.parent is not None:
        transaction = transaction.parent
    return transaction


def per_transaction(session: Session, name: str) -> dict[Any, Any]:
    """A dict kept in `session.info` under `name` for the current transaction and savepoint
    only: what it remembers (a chain's head, the enabled webhook endpoints) never outlives a
    commit, and nothing rolled back is ever read from it."""
    scope = (session.get_transaction(), session.get_nested_transaction())
    cached = session.info.get(name)
    if cached is None or cached[0][0] is not scope[0] or cached[0][1] is not scope[1]:
        cached = session.info[name] = (scope, {})
    return cached[1]
