"""Sealed columns, data keys per contact, blind indexes and key rotation."""

import pytest
import sqlalchemy
from sqlalchemy import Text, select, text, type_coerce

from store import crypto, keys, rotation
from store.contacts import find_contact, upsert_contact
from store.gdpr import erase_contact
from store.messages import record_inbound_message
from store.models import Contact, DataKey, Message
from store.types import utcnow
from tests.conftest import TEST_DATA_KEYS, TEST_INDEX_KEY

NOW = utcnow()


def raw(db, table: str, column: str) -> list:
    with db.transaction(readonly=True) as session:
        return list(session.scalars(text(f"SELECT {column} FROM {table} ORDER BY id")))


def add_customer(db, wa_id="34600111222", name="Lucía Pérez", said="Mi pedido 4411"):
    with db.transaction() as session:
        contact, _ = upsert_contact(session, wa_id=wa_id, user_id=None, name=name, now=NOW)
        record_inbound_message(session, provider_message_id=f"wamid.{wa_id}",
                               contact_id=contact.id, type="text", text=said, media_id=None,
                               payload={"said": said}, at=NOW)
        return contact.id, contact.data_key_id


def test_values_are_sealed_with_the_contacts_own_key_and_read_back_plain(db):
    contact_id, key_id = add_customer(db)
    stored = raw(db, "contacts", "name") + raw(db, "messages", "text")
    stored += raw(db, "messages", "payload")
    assert all(value.startswith(f"enc1:{key_id}:") for value in stored)
    assert not any("Lucía" in value or "4411" in value for value in stored)
    assert raw(db, "contacts", "wa_id_index") == [keys.blind_index("34600111222")]
    with db.transaction() as session:
        contact = find_contact(session, wa_id="34600111222")
        message = session.scalars(select(Message)).one()
        assert (contact.id, contact.name, contact.wa_id) == (contact_id, "Lucía Pérez",
                                                             "34600111222")
        assert (message.text, message.payload) == ("Mi pedido 4411", {"said": "Mi pedido 4411"})
        assert message.text.key_id == key_id  # written back, it keeps its key


def test_two_customers_have_two_keys(db):
    _, first = add_customer(db, wa_id="34600000001")
    _, second = add_customer(db, wa_id="34600000002")
    assert first != second
    with db.transaction() as session:
        assert session.scalar(select(DataKey.wrapped).where(DataKey.id == first)).startswith(
            "ktest:")


def test_a_changed_value_fails_its_authentication(db):
    add_customer(db)
    [sealed] = raw(db, "contacts", "name")
    forged = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with db.transaction() as session:
        session.execute(text("UPDATE contacts SET name = :v"), {"v": forged})
    with pytest.raises(ValueError, match="fails its authentication"), \
            db.transaction(readonly=True) as session:
        session.scalars(select(Contact)).one()


def test_a_destroyed_key_reads_as_erased_and_the_number_starts_a_new_contact(db):
    contact_id, key_id = add_customer(db)
    sealed = crypto.seal_text("what a task title or an audit note kept", key_id)
    with db.transaction() as session:
        erasure = erase_contact(session, wa_id="34600111222", actor="test", reason="asked",
                                now=NOW)
    assert erasure.data_key_destroyed and erasure.messages == 1
    crypto.forget_data_key(key_id)
    with db.transaction() as session:
        old = session.get(Contact, contact_id)
        assert (old.name, old.wa_id, old.wa_id_index) == (None, None, None)
        assert find_contact(session, wa_id="34600111222") is None
        again, created = upsert_contact(session, wa_id="34600111222", user_id=None, now=NOW)
        assert created and again.id != contact_id
    with db.transaction(readonly=True) as session:
        assert session.scalar(select(type_coerce(Message.text, Text))) is None  # emptied
    assert crypto.open_text(sealed) == crypto.ERASED  # what other rows sealed with it


def test_rotation_rewraps_data_keys_and_reseals_shared_values(db):
    contact_id, key_id = add_customer(db)
    with db.transaction() as session:  # a value sealed with the shared key (no contact)
        session.execute(text("UPDATE messages SET payload = :v"),
                        {"v": crypto.seal(b'{"shared": true}', None)})
    new_entry = keys.new_master_entry()
    keys.configure(keys.parse_keys(f"{new_entry},{TEST_DATA_KEYS}", TEST_INDEX_KEY))
    try:
        with db.transaction() as session:
            assert rotation.rewrap_data_keys(session, limit=10) == 1
            assert rotation.reseal_values(session, table=Message.__table__, limit=10) == 1
        keys.configure(keys.parse_keys(new_entry, TEST_INDEX_KEY))  # the old key is gone
        crypto.forget_data_key(key_id)
        with db.transaction(readonly=True) as session:
            message = session.scalars(select(Message)).one()
            assert message.payload == {"shared": True}
            assert session.get(Contact, contact_id).name == "Lucía Pérez"
    finally:
        keys.configure(keys.parse_keys(TEST_DATA_KEYS, TEST_INDEX_KEY))


def test_contacts_from_before_encryption_get_their_key_and_are_sealed(db):
    with db.transaction() as session:
        session.execute(text("INSERT INTO contacts (name, wa_id, crm_status, tags, external_ids,"
                             " first_seen_at, last_seen_at) VALUES ('Old Name', '34699', 'lead',"
                             " '[]', '{}', :t, :t)"), {"t": NOW})
    with db.transaction() as session:
        assert rotation.key_legacy_contacts(session, limit=10) == 1
        assert rotation.reseal_values(session, table=Contact.__table__, limit=10) == 1
    [name] = raw(db, "contacts", "name")
    assert name.startswith("enc1:") and "Old" not in name
    with db.transaction(readonly=True) as session:
        assert session.scalars(select(Contact)).one().name == "Old Name"


@pytest.mark.parametrize("data, index, message", [
    ("", "B" * 43, "OPSBOT_DATA_KEYS is not set"),
    ("k1:" + "A" * 43, "", "OPSBOT_INDEX_KEY is not set"),
    ("k1:short", "B" * 43, "32 random bytes"),
    ("nocolon", "B" * 43, "ID:KEY"),
    ("k1:" + "A" * 43 + ",k1:" + "C" * 43, "B" * 43, "appears twice"),
])
def test_malformed_keys_are_refused_with_what_to_do(data, index, message):
    with pytest.raises(keys.KeysError, match=message):
        keys.parse_keys(data, index)


def test_a_page_of_customers_looks_their_keys_up_in_one_query(db):
    ids = [add_customer(db, wa_id=f"3460000{n:04d}")[1] for n in range(5)]
    for key_id in ids:
        crypto.forget_data_key(key_id)
    statements = []
    listen = sqlalchemy.event.listen
    listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with db.transaction(readonly=True) as session:
        crypto.load_keys(ids)
        names = [c.name for c in session.scalars(select(Contact).order_by(Contact.id))]
    assert names == ["Lucía Pérez"] * 5
    assert sum("FROM data_keys" in statement for statement in statements) == 1
