"""`GET|PATCH /contacts/{wa_id}`, `GET /contacts`; what a PATCH sets, the rules see."""

import pytest
from sqlalchemy import select

from sandbox.inbound import whatsapp_message
from store.contacts import upsert_contact
from store.models import Contact, Task
from store.types import utcnow
from tests.bot.api.kit import assert_problem, running_api

WA_ID = "34600555111"


@pytest.fixture
def api(db, redis_url, tmp_path):
    with running_api(db, redis_url, tmp_path) as api:
        with api.db.transaction() as session:
            upsert_contact(session, wa_id=WA_ID, user_id=None, name="Rosa Díaz", now=utcnow())
        yield api


def test_a_contact_reads_and_patches(api):
    key = api.key("crm", scopes=["contacts:read", "contacts:write"])
    shown = api.call("GET", f"/contacts/{WA_ID}", key).json()
    assert (shown["wa_id"], shown["name"], shown["crm_status"]) == (WA_ID, "Rosa Díaz", "lead")
    patch = {"crm_status": "customer", "tags": ["b2b", "b2b", "hardware"], "name": "Rosa D.",
             "language": "es", "external_ids": {"hubspot": "123"}}
    response = api.call("PATCH", f"/contacts/{WA_ID}", key, json=patch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["crm_status"], body["tags"], body["name"]) == ("customer", ["b2b", "hardware"],
                                                                "Rosa D.")
    assert body["external_ids"] == {"hubspot": "123"}
    removed = api.call("PATCH", f"/contacts/{WA_ID}", key,
                       json={"external_ids": {"hubspot": None, "pipedrive": "9"}})
    assert removed.json()["external_ids"] == {"pipedrive": "9"}
    [first, second] = api.system_events("contact_updated")
    assert first.actor == "api:crm"
    assert first.details == {"contact_id": body["id"], "fields": [
        "crm_status", "tags", "name", "language", "external_ids"]}
    assert second.details["fields"] == ["external_ids"]
    with api.db.engine.connect() as connection:  # the name is sealed at rest
        stored = connection.exec_driver_sql("SELECT name FROM contacts").scalar()
    assert "Rosa" not in stored


@pytest.mark.parametrize("patch", [
    {"crm_status": "VIP!"}, {"crm_status": None}, {"tags": "vip"}, {"language": "spanish"},
    {"external_ids": {"Bad System": "1"}}, {"colour": "red"}, {"name": ""},
])
def test_a_bad_patch_is_422(api, patch):
    key = api.key("crm", scopes=["contacts:write"])
    assert_problem(api.call("PATCH", f"/contacts/{WA_ID}", key, json=patch), 422)
    assert api.system_events("contact_updated") == []


def test_unknown_contact_is_404(api):
    key = api.key("crm", scopes=["contacts:read", "contacts:write"])
    assert_problem(api.call("GET", "/contacts/34999", key), 404)
    assert_problem(api.call("PATCH", "/contacts/34999", key, json={"tags": []}), 404)


def test_contacts_list_filters(api):
    key = api.key("crm", scopes=["contacts:read", "contacts:write"])
    with api.db.transaction() as session:
        upsert_contact(session, wa_id="34600555222", user_id=None, name="Otro", now=utcnow())
    api.call("PATCH", f"/contacts/{WA_ID}", key,
             json={"crm_status": "vip", "external_ids": {"hubspot": "77"}})
    listed = api.call("GET", "/contacts", key).json()
    assert [c["wa_id"] for c in listed["data"]] == [WA_ID, "34600555222"]
    by_id = api.call("GET", "/contacts", key, params={"external_id": "hubspot:77"}).json()
    assert [c["wa_id"] for c in by_id["data"]] == [WA_ID]
    by_status = api.call("GET", "/contacts", key, params={"crm_status": "vip"}).json()
    assert [c["wa_id"] for c in by_status["data"]] == [WA_ID]
    paged = api.call("GET", "/contacts", key, params={"limit": 1}).json()
    assert paged["next_cursor"] is not None
    rest = api.call("GET", "/contacts", key, params={"cursor": paged["next_cursor"]}).json()
    assert [c["wa_id"] for c in rest["data"]] == ["34600555222"]
    assert_problem(api.call("GET", "/contacts", key, params={"external_id": "nocolon"}), 422)


def test_a_vip_set_by_the_crm_is_what_the_next_message_sees(api):
    key = api.key("crm", scopes=["contacts:write"])
    patched = api.call("PATCH", f"/contacts/{WA_ID}", key,
                       json={"crm_status": "vip", "tags": ["key-account"]})
    assert patched.status_code == 200, patched.text
    body = whatsapp_message(wa_id=WA_ID, name="Rosa Díaz", phone_id="1000000001",
                            message={"type": "text", "text": {"body": "Necesito ayuda"}})
    assert api.world.send.whatsapp(body).status_code == 200
    api.world.work()
    with api.db.transaction(readonly=True) as session:
        task = session.scalars(select(Task)).one()
        contact = session.scalars(select(Contact).where(Contact.id == task.contact_id)).one()
        assert (task.rule, task.category, "vip" in task.tags) == ("vip", "sales", True)
        assert contact.tags == ["key-account"]


def test_an_access_then_an_erasure_request_through_the_api(api):
    crm = api.key("crm", scopes=["contacts:read", "contacts:write"])
    dpo = api.key("dpo", scopes=["contacts:admin"])
    assert_problem(api.call("GET", f"/contacts/{WA_ID}/export", crm), 403)
    exported = api.call("GET", f"/contacts/{WA_ID}/export", dpo)
    assert exported.status_code == 200, exported.text
    assert exported.json()["contact"]["name"] == "Rosa Díaz"

    request = {"reason": "asked by e-mail on 2026-12-01"}
    headers = {"Idempotency-Key": "erase-1"}
    erased = api.call("POST", f"/contacts/{WA_ID}/erase", dpo, json=request, headers=headers)
    assert erased.status_code == 200, erased.text
    assert erased.json()["data_key_destroyed"] is True
    again = api.call("POST", f"/contacts/{WA_ID}/erase", dpo, json=request, headers=headers)
    assert again.json() == erased.json()  # replayed: one erasure
    [event] = api.system_events("erased")
    assert event.actor == "api:dpo" and event.details["reason"] == request["reason"]
    assert_problem(api.call("GET", f"/contacts/{WA_ID}", crm), 404)
    assert_problem(api.call("POST", f"/contacts/{WA_ID}/erase", dpo, json=request), 404)


@pytest.mark.parametrize("reason", ["", "   ", "\x1f", "\x1c \t"])
def test_an_erasure_without_a_reason_is_422_and_erases_nothing(api, reason):
    dpo = api.key("dpo", scopes=["contacts:admin"])
    refused = api.call("POST", f"/contacts/{WA_ID}/erase", dpo, json={"reason": reason})
    assert_problem(refused, 422)
    assert api.call("GET", f"/contacts/{WA_ID}/export", dpo).status_code == 200
