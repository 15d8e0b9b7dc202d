"""`GET /tasks`, `GET /tasks/{ref}`, `POST /tasks/{ref}/actions` and Idempotency-Key."""

import threading

import pytest
from sqlalchemy import func, select

from store.lifecycle import SYSTEM
from store.models import Task, TaskEvent
from store.tasks import create_task
from tests.bot.api.kit import assert_problem, running_api


@pytest.fixture
def api(db, redis_url, tmp_path):
    with running_api(db, redis_url, tmp_path) as api:
        yield api


def add_tasks(api, count: int, team: str = "logistics") -> list[int]:
    with api.db.transaction() as session:
        return [create_task(session, title=f"t{n}", category="support", priority="normal",
                            actor=SYSTEM, team=team).id for n in range(count)]


def pages(api, key: str, **filters) -> list[list[int]]:
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **filters} | ({"cursor": cursor} if cursor else {})
        body = api.call("GET", "/tasks", key, params=params).json()
        seen.append([task["id"] for task in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_tasks_page_in_id_order_with_filters(api):
    key = api.key("crm", scopes=["tasks:read"])
    logistics, sales = add_tasks(api, 5), add_tasks(api, 1, team="sales")
    assert pages(api, key) == [logistics[:2], logistics[2:4], [logistics[4], *sales]]
    assert pages(api, key, team="sales") == [sales]
    assert pages(api, key, status="new", category="support", priority="normal",
                 assignee="ana") == [[]]
    future = api.call("GET", "/tasks", key, params={"updated_after": "2999-01-01T00:00:00Z"})
    assert future.json() == {"data": [], "next_cursor": None}
    assert_problem(api.call("GET", "/tasks?status=bogus", key), 422)


def test_status_open_means_every_status_still_to_do(api):
    key = api.key("crm", scopes=["tasks:read"])
    open_ids = add_tasks(api, 2)
    with api.db.transaction() as session:
        session.execute(Task.__table__.update().where(Task.id == open_ids[1])
                        .values(status="closed"))
    assert pages(api, key, status="open") == [[open_ids[0]]]
    assert pages(api, key, status="closed") == [[open_ids[1]]]


def test_a_key_bound_to_an_agent_sees_its_teams_tasks(api):
    logistics, sales = add_tasks(api, 1), add_tasks(api, 1, team="sales")
    key = api.key("ana-crm", scopes=["tasks:read"], agent="ana")
    assert pages(api, key) == [logistics]
    assert_problem(api.call("GET", f"/tasks/{sales[0]}", key), 403)


def test_paging_while_tasks_are_inserted_sees_each_once(api):
    key = api.key("crm", scopes=["tasks:read"])
    first = add_tasks(api, 6)
    writer = threading.Thread(target=lambda: [add_tasks(api, 1) for _ in range(20)])
    writer.start()
    try:
        seen = [number for page in pages(api, key) for number in page]
    finally:
        writer.join()
    assert len(seen) == len(set(seen)) and seen == sorted(seen)
    assert set(first) <= set(seen)
    with api.db.transaction(readonly=True) as session:
        committed = list(session.scalars(select(Task.id).where(Task.id <= seen[-1])))
    assert seen == sorted(committed)  # none skipped up to where the client stopped


def test_a_task_shows_with_its_messages_and_trail(api):
    key = api.key("crm", scopes=["tasks:read"])
    number = api.world.assigned_task("ana")
    body = api.call("GET", f"/tasks/T-{number}", key).json()
    assert (body["ref"], body["assignee"], body["status"]) == (f"T-{number}", "ana", "assigned")
    assert [e["action"] for e in body["events"]][:2] == ["created", "assign"]
    assert body["events"][0]["from"] is None and body["events"][0]["to"] == "new"
    assert body["messages"] == []
    assert api.call("GET", f"/tasks/{number}", key).json()["id"] == number


def test_a_bound_key_acts_as_its_agent(api):
    number = api.world.assigned_task("ana")
    key = api.key("ana-crm", scopes=["tasks:write"], agent="ana")
    accepted = api.call("POST", f"/tasks/T-{number}/actions", key, json={"verb": "accept"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["task"]["status"] == "accepted"
    assert ("accept", "agent:ana") in api.actions(number)


def test_an_unbound_key_acts_as_api_name_with_admin_rights(api):
    number = api.world.assigned_task("ana")
    key = api.key("crm", scopes=["tasks:write"])
    for verb, extra in (("note", {"text": "llamó\npor teléfono"}),
                        ("reassign", {"agent": "pablo"})):
        response = api.call("POST", f"/tasks/{number}/actions", key, json={"verb": verb, **extra})
        assert response.status_code == 200, response.text
    with api.db.transaction(readonly=True) as session:
        note = session.scalars(select(TaskEvent).where(TaskEvent.task_id == number,
                                                       TaskEvent.action == "note")).one()
    assert (note.actor, note.details["text"]) == ("api:crm", "llamó\npor teléfono")
    assert api.world.task(number).assignee_id == "pablo"
    assert ("reassign", "api:crm") in api.actions(number)


def test_a_refused_verb_is_403_with_the_reason_and_audited(api):
    number = api.world.assigned_task("ana")
    key = api.key("sara-crm", scopes=["tasks:write"], agent="sara")
    body = assert_problem(api.call("POST", f"/tasks/{number}/actions", key,
                                   json={"verb": "close"}), 403)
    assert body["detail"] == f"T-{number} is not a task of your teams"
    assert ("denied", "agent:sara") in api.actions(number)
    assert_problem(api.call("POST", "/tasks/T-999/actions", key, json={"verb": "start"}), 404)
    assert_problem(api.call("POST", f"/tasks/{number}/actions", key,
                            json={"verb": "note"}), 422)
    assert_problem(api.call("POST", f"/tasks/{number}/actions", key,
                            json={"verb": "fly"}), 422)


def test_a_reply_is_queued_and_sent(api):
    number = api.world.assigned_task("ana")
    key = api.key("crm", scopes=["tasks:write"])
    response = api.call("POST", f"/tasks/{number}/actions", key,
                        json={"verb": "reply", "text": "Su pedido sale hoy"})
    assert response.status_code == 200, response.text
    api.world.work()
    assert "Su pedido sale hoy" in api.world.customer_texts()


def test_a_retry_with_the_same_idempotency_key_acts_once(api):
    number = api.world.assigned_task("ana")
    key = api.key("crm", scopes=["tasks:write"])
    headers = {"Idempotency-Key": "note-1"}
    body = {"verb": "note", "text": "una vez"}
    first = api.call("POST", f"/tasks/{number}/actions", key, json=body, headers=headers)
    again = api.call("POST", f"/tasks/{number}/actions", key, json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [a for a, _ in api.actions(number)].count("note") == 1
    other = api.call("POST", f"/tasks/{number}/actions", key, headers=headers,
                     json={"verb": "note", "text": "otra"})
    assert "another request" in assert_problem(other, 422)["detail"]


def test_concurrent_retries_with_one_key_act_once(api):
    number = api.world.assigned_task("ana")
    key = api.key("crm", scopes=["tasks:write"])
    answers = []

    def post() -> None:
        answers.append(api.call("POST", f"/tasks/{number}/actions", key,
                                json={"verb": "note", "text": "a la vez"},
                                headers={"Idempotency-Key": "same"}))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.text for a in answers}) == 1
    with api.db.transaction(readonly=True) as session:
        notes = session.scalar(select(func.count()).where(TaskEvent.task_id == number,
                                                          TaskEvent.action == "note"))
    assert notes == 1


def test_a_key_of_no_agent_cannot_take_an_unassigned_task(api):
    [number] = add_tasks(api, 1)
    key = api.key("crm", scopes=["tasks:write"])
    body = assert_problem(api.call("POST", f"/tasks/{number}/actions", key,
                                   json={"verb": "accept"}), 403)
    assert "nobody to accept it for" in body["detail"]
    assert ("denied", "api:crm") in api.actions(number)
    assert api.world.task(number).status == "new"
