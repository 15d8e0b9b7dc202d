"""`GET /events` (the audit stream), `GET /report` and `POST|GET /webhooks`."""

from datetime import timedelta

import pytest

from bot.core import tunables
from store.events import record_event
from store.lifecycle import SYSTEM
from store.models import Survey, SurveyStatus
from store.reports import build_report, report_as_dict
from store.tasks import create_task, get_task
from store.types import utcnow
from tests.bot.api.kit import assert_problem, running_api


@pytest.fixture
def api(db, redis_url, tmp_path):
    with running_api(db, redis_url, tmp_path) as api:
        yield api


def new_tasks(api, count: int) -> list[int]:
    with api.db.transaction() as session:
        return [create_task(session, title="t", category="support", priority="normal",
                            actor=SYSTEM).id for _ in range(count)]


def poll(api, key: str, after: str | None = None, limit: int = 50) -> dict:
    params = {"limit": limit} | ({"after": after} if after else {})
    response = api.call("GET", "/events", key, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_stream_pages_in_id_order(api):
    key = api.key("poller", scopes=["events:read"])
    assert poll(api, key) == {"data": [], "next_cursor": None}
    new_tasks(api, 3)
    first = poll(api, key, limit=2)
    assert [e["action"] for e in first["data"]] == ["created", "created"]
    assert first["data"][0]["task"] == "T-1" and first["data"][0]["to"] == "new"
    rest = poll(api, key, first["next_cursor"])
    assert [e["task"] for e in rest["data"]] == ["T-3"]
    idle = poll(api, key, rest["next_cursor"])
    assert idle == {"data": [], "next_cursor": rest["next_cursor"]}  # poll again from there
    assert_problem(api.call("GET", "/events?after=xyz", key), 422)


def test_a_young_gap_holds_the_stream_until_it_fills(api, database_url):
    """PostgreSQL: event ids can commit out of order; the stream never moves past one that
    may still come."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite commits ids in order")
    key = api.key("poller", scopes=["events:read"])
    one, two = new_tasks(api, 2)
    cursor = poll(api, key)["next_cursor"]
    with api.db.transaction() as slow:
        record_event(slow, task=get_task(slow, ref=one), actor="ana", action="note")
        with api.db.transaction() as fast:
            record_event(fast, task=get_task(fast, ref=two), actor="ana", action="note")
        held = poll(api, key, cursor)
        assert held == {"data": [], "next_cursor": cursor}
    both = poll(api, key, cursor)
    assert [e["task"] for e in both["data"]] == [f"T-{one}", f"T-{two}"]


def test_an_old_gap_is_passed(api, monkeypatch):
    key = api.key("poller", scopes=["events:read"])
    new_tasks(api, 2)
    with api.db.engine.begin() as connection:  # a hole: as a rolled back insert leaves
        connection.exec_driver_sql("DELETE FROM task_events WHERE id = 1")
    monkeypatch.setattr(tunables, "EVENTS_GAP_GRACE", timedelta(hours=1))
    assert poll(api, key)["data"] == []
    monkeypatch.setattr(tunables, "EVENTS_GAP_GRACE", timedelta(0))
    assert [e["id"] for e in poll(api, key)["data"]] == [2]


def test_the_report_is_what_opsbot_report_prints(api):
    key = api.key("bi", scopes=["tasks:read"])
    new_tasks(api, 2)
    response = api.call("GET", "/report", key, params={"since": "7d"})
    assert response.status_code == 200, response.text
    body = response.json()
    with api.db.transaction(readonly=True) as session:
        now = utcnow()
        expected = report_as_dict(build_report(session, since=now - timedelta(days=7),
                                               until=now, minutes_per_task=5))
    assert set(body) == set(expected)
    assert body["created"] == expected["created"] and body["created"]["total"] == 2
    assert_problem(api.call("GET", "/report", key, params={"since": "soon"}), 422)
    assert api.call("GET", "/report", key, params={"since": "2026-01-01"}).status_code == 200


def test_the_report_has_the_surveys_response_rate_and_csat(api):
    key = api.key("bi", scopes=["tasks:read"])
    sent = utcnow() - timedelta(hours=2)
    tasks = new_tasks(api, 3)
    with api.db.transaction() as session:
        for task_id, (agent, good) in zip(tasks, [("ana", True), ("ana", False), ("bob", None)],
                                          strict=True):
            answered = None if good is None else sent + timedelta(minutes=5)
            session.add(Survey(task_id=task_id, agent_id=agent, team="sales",
                               category="support", due_at=sent, sent_at=sent,
                               status=SurveyStatus.ANSWERED if answered else SurveyStatus.SENT,
                               answered_at=answered, good=good))
    body = api.call("GET", "/report", key, params={"since": "1d"}).json()
    assert body["surveys"]["overall"] == {"name": "all", "sent": 3, "answered": 2, "good": 1,
                                          "response_rate": 2 / 3, "csat": 0.5}
    assert [(row["name"], row["response_rate"], row["csat"])
            for row in body["surveys"]["by_agent"]] == [("ana", 1.0, 0.5), ("bob", 0.0, None)]
    assert body["surveys"]["by_team"][0]["sent"] == body["surveys"]["by_category"][0]["sent"]
    assert body["satisfaction"]["csat"] is None  # no rating given
    schemas = api.call("GET", "/openapi.json").json()["components"]["schemas"]
    assert {"sent", "answered", "good", "response_rate", "csat"} <= set(
        schemas["SurveyRow"]["properties"])


def test_webhook_endpoints_are_added_and_listed(api):
    key = api.key("admin", scopes=["webhooks:admin"])
    added = api.call("POST", "/webhooks", key, headers={"Idempotency-Key": "hook-1"},
                     json={"url": "https://crm.example/hook", "events": ["task.created"]})
    assert added.status_code == 201, added.text
    assert added.json()["secret"].startswith("whsec_")
    again = api.call("POST", "/webhooks", key, headers={"Idempotency-Key": "hook-1"},
                     json={"url": "https://crm.example/hook", "events": ["task.created"]})
    assert again.json() == added.json()
    listed = api.call("GET", "/webhooks", key).json()
    assert [(e["url"], e["events"]) for e in listed] == [("https://crm.example/hook",
                                                          ["task.created"])]
    assert "secret" not in listed[0]
    bad = api.call("POST", "/webhooks", key, json={"url": "ftp://x", "events": ["task.created"]})
    assert_problem(bad, 422)
