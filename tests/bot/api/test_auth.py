"""Keys, scopes, refusals (each audited) and the rate limit."""

import httpx
import pytest

from bot.api import report
from bot.core import tunables
from store.apikeys import list_api_keys, revoke_api_key
from store.types import utcnow
from tests.bot.api.kit import assert_problem, running_api


@pytest.fixture
def api(db, redis_url, tmp_path):
    with running_api(db, redis_url, tmp_path) as api:
        yield api


def denials(api) -> list[tuple[str, dict]]:
    return [(event.actor, event.details) for event in api.system_events("api_denied")]


def test_a_key_with_the_scope_reads(api):
    key = api.key("crm", scopes=["tasks:read"])
    response = api.call("GET", "/tasks", key)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}
    assert denials(api) == []
    with api.db.transaction(readonly=True) as session:
        [row] = list_api_keys(session)
        first_use = row.last_used_at
    assert first_use is not None
    api.call("GET", "/tasks", key)
    with api.db.transaction(readonly=True) as session:
        assert list_api_keys(session)[0].last_used_at == first_use  # once a minute at most


@pytest.mark.parametrize("header", [None, "Bearer opsk_nope", "Basic abc", "Bearer"])
def test_a_missing_or_unknown_key_is_401_and_audited(api, header):
    headers = {"Authorization": header} if header is not None else {}
    body = assert_problem(api.call("GET", "/tasks", headers=headers), 401)
    assert body["instance"] == "/api/v1/tasks"
    [(actor, details)] = denials(api)
    assert actor == "api:unknown"
    assert details["status"] == 401 and details["path"] == "/api/v1/tasks"
    assert details["method"] == "GET"
    assert "opsk_nope" not in str(details)


def test_a_revoked_key_is_401(api):
    key = api.key("old", scopes=["tasks:read"])
    assert api.call("GET", "/tasks", key).status_code == 200
    with api.db.transaction() as session:
        revoke_api_key(session, name="old", now=utcnow())
    assert_problem(api.call("GET", "/tasks", key), 401)
    assert [actor for actor, _ in denials(api)] == ["api:unknown"]


def test_a_read_key_cannot_act_403_audited(api):
    key = api.key("reader", scopes=["tasks:read"])
    number = api.world.assigned_task("ana")
    response = api.call("POST", f"/tasks/T-{number}/actions", key,
                        json={"verb": "note", "text": "hola"})
    body = assert_problem(response, 403)
    assert "tasks:write" in body["detail"]
    [(actor, details)] = denials(api)
    assert actor == "api:reader" and details["status"] == 403
    assert ("note", "api:reader") not in api.actions(number)


@pytest.mark.parametrize(("path", "scope"), [
    ("/contacts", "contacts:read"), ("/events", "events:read"), ("/report", "tasks:read"),
    ("/webhooks", "webhooks:admin"),
])
def test_each_endpoint_needs_its_scope(api, path, scope):
    key = api.key("narrow", scopes=["tasks:write"])
    body = assert_problem(api.call("GET", path, key), 403)
    assert scope in body["detail"]


def test_over_the_rate_limit_is_429_with_retry_after(api, monkeypatch):
    monkeypatch.setattr(tunables, "API_RATE_LIMIT", 3)
    key = api.key("busy", scopes=["tasks:read"])
    statuses = [api.call("GET", "/tasks", key).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = api.call("GET", "/tasks", key)
    assert_problem(response, 429)
    assert 0 < int(response.headers["Retry-After"]) <= tunables.API_RATE_WINDOW
    other = api.key("calm", scopes=["tasks:read"])
    assert api.call("GET", "/tasks", other).status_code == 200  # per key


def test_errors_are_problems_never_tracebacks(api):
    key = api.key("crm")
    assert_problem(api.call("GET", "/nowhere", key), 404)
    assert_problem(api.call("GET", "/tasks/T-999", key), 404)
    body = assert_problem(api.call("GET", "/tasks?limit=0", key), 422)
    assert "limit" in body["detail"]
    assert_problem(api.call("GET", "/tasks?cursor=%21%21", key), 422)
    assert_problem(api.call("POST", "/tasks/1/actions", key, content=b"{not json",
                            headers={"Content-Type": "application/json"}), 422)


def test_the_schema_and_docs_are_served(api):
    schema = api.call("GET", "/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/tasks", "/tasks/{ref}", "/tasks/{ref}/actions", "/contacts", "/contacts/{wa_id}",
            "/events", "/report", "/webhooks"} <= set(paths)
    assert schema.json()["servers"] == [{"url": "/api/v1"}]
    docs = api.call("GET", "/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
    assert httpx.get(api.url + "/openapi.json").status_code == 404  # the webhook app: none


def test_an_unexpected_failure_is_a_bare_500_problem(api, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("db-host-7 said no")

    monkeypatch.setattr(report, "build_report", broken)
    body = assert_problem(api.call("GET", "/report", api.key("bi")), 500)
    assert "db-host-7" not in body["detail"]


def test_a_value_the_database_refuses_is_422(api, database_url):
    key = api.key("crm")
    response = api.call("GET", "/tasks", key, params={"team": "a\x00b"})
    if database_url.startswith("postgresql"):  # SQLite takes a NUL character
        assert_problem(response, 422)
    else:
        assert response.json() == {"data": [], "next_cursor": None}
    assert_problem(api.call("GET", "/tasks/T-999999999999", key), 404)
