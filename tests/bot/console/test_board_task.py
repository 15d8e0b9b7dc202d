"""The board and the task page over HTTP: scope, filters, the live stream, and actions run
through the command layer as the signed-in person."""

import re

import httpx

from sandbox.inbound import whatsapp_message
from store.crypto import personal
from store.models import Survey, Task
from store.types import utcnow
from tests.console_kit import add_person, csrf_of, signed_in
from tests.notifiers.helpers import make_task


def new_task(api, *, team: str = "logistics", assignee: str | None = None) -> str:
    with api.db.transaction() as session:
        task = make_task(session, team=team, assignee=assignee)
        task.contact.last_inbound_at = utcnow()
        return task.ref


def refs(page: httpx.Response) -> list[str]:
    return re.findall(r'data-ref="(T-\d+)"', page.text)


def test_the_board_shows_what_the_viewer_may_see(console):
    logistics, sales = new_task(console), new_task(console, team="sales")
    admin = add_person(console.db, "alba@example.com", "admin", agent="alba")
    agent = add_person(console.db, "ana@example.com", "agent", agent="ana")
    supervisor = add_person(console.db, "sofia@example.com", "supervisor", agent="sofia",
                            teams=("sales",))
    with signed_in(console.url, admin) as http:
        assert set(refs(http.get("/"))) == {logistics, sales}
    with signed_in(console.url, agent) as http:
        assert refs(http.get("/")) == [logistics]
    with signed_in(console.url, supervisor) as http:
        assert refs(http.get("/")) == [sales]


def test_board_filters_and_the_rows_alone(console):
    logistics, sales = new_task(console), new_task(console, team="sales")
    admin = add_person(console.db, "alba@example.com", "admin")
    with signed_in(console.url, admin) as http:
        assert refs(http.get("/", params={"team": "sales"})) == [sales]
        rows = http.get("/board/rows", params={"team": "logistics"})
        assert refs(rows) == [logistics] and "<html" not in rows.text
        assert refs(http.get("/", params={"sla": "waiting_team"})) == [logistics, sales]
        assert refs(http.get("/", params={"sla": "breached"})) == []


def test_the_stream_tells_when_the_board_changed(console):
    admin = add_person(console.db, "alba@example.com", "admin")
    with signed_in(console.url, admin) as http, \
            http.stream("GET", "/board/stream") as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        new_task(console)
        seen = []
        for line in lines:
            seen.append(line)
            if line == "event: board":
                break
        assert "event: board" in seen


def test_an_agent_is_refused_a_task_of_another_team(console):
    ref = new_task(console, team="sales")
    agent = add_person(console.db, "ana@example.com", "agent", agent="ana")
    with signed_in(console.url, agent) as http:
        page = http.get(f"/tasks/{ref}")
        assert page.status_code == 403
        assert "not a task of your teams" in page.text and "Traceback" not in page.text
        token = csrf_of(http.get("/"))
        refused = http.post(f"/tasks/{ref}/actions", data={"verb": "note", "text": "hola",
                                                           "csrf_token": token})
        assert "not a task of your teams" in httpx.QueryParams(
            refused.headers["location"].split("?", 1)[1])["failed"]
    assert ("denied", "agent:ana") in console.actions(int(ref[2:]))


def test_a_reply_from_the_task_page_reaches_the_customer(console):
    ref = new_task(console, assignee="ana")
    agent = add_person(console.db, "ana@example.com", "agent", agent="ana")
    with signed_in(console.url, agent) as http:
        page = http.get(f"/tasks/{ref}")
        assert page.status_code == 200 and "Cambio de envío" in page.text
        token = csrf_of(page)
        for verb in ("accept", "start"):
            http.post(f"/tasks/{ref}/actions", data={"verb": verb, "csrf_token": token})
        answer = http.post(f"/tasks/{ref}/actions", data={
            "verb": "reply", "text": "Lo cambiamos hoy mismo.", "csrf_token": token})
        assert "said=" in answer.headers["location"]
        console.world.work()
        assert "Lo cambiamos hoy mismo." in console.world.customer_texts()
        shown = http.get(f"/tasks/{ref}")
        assert "Lo cambiamos hoy mismo." in shown.text  # in the conversation, by her
        assert "· agent:ana · via" in shown.text  # the message's line names who wrote it
    actions = console.actions(int(ref[2:]))
    assert ("accept", "agent:ana") in actions and ("reply", "agent:ana") in actions


def test_a_user_of_no_agent_acts_under_their_own_name(console):
    ref = new_task(console, assignee="ana")
    admin = add_person(console.db, "ines@example.com", "admin")
    with signed_in(console.url, admin) as http:
        token = csrf_of(http.get(f"/tasks/{ref}"))
        http.post(f"/tasks/{ref}/actions", data={"verb": "note", "text": "mirad esto",
                                                 "csrf_token": token})
    assert ("note", "console:ines@example.com") in console.actions(int(ref[2:]))


def test_an_unknown_task_is_a_page_not_a_traceback(console):
    admin = add_person(console.db, "ines@example.com", "admin")
    with signed_in(console.url, admin) as http:
        page = http.get("/tasks/T-999")
        assert page.status_code == 404 and "Traceback" not in page.text


def test_the_customers_photo_opens_from_the_task_page_only_for_who_may_see_it(console):
    console.world.graph.add_media("MEDIA-1", b"\x89PNG photo bytes", "image/png")
    body = whatsapp_message(wa_id="34611222333", name="Rosa Díaz", phone_id="1000000001",
                            message={"type": "image", "image": {"id": "MEDIA-1",
                                                                "mime_type": "image/png"}})
    assert console.world.send.whatsapp(body).status_code == 200
    console.world.work()
    admin = add_person(console.db, "alba@example.com", "admin", agent="alba")
    with signed_in(console.url, admin) as http:
        [ref] = refs(http.get("/"))
        page = http.get(f"/tasks/{ref}")
        assert f"/console/tasks/{ref}/media/MEDIA-1" in page.text
        photo = http.get(f"/tasks/{ref}/media/MEDIA-1")
        assert photo.content == b"\x89PNG photo bytes"
        assert photo.headers["content-type"] == "image/png"
        assert "sandbox" in photo.headers["content-security-policy"]
        assert http.get(f"/tasks/{ref}/media/OTHER").status_code == 404
    outsider = add_person(console.db, "sara@example.com", "agent", agent="sara")
    team = console.world.task(int(ref[2:])).team
    with signed_in(console.url, outsider) as http:
        expected = 200 if team in (None, "sales") else 403
        assert http.get(f"/tasks/{ref}/media/MEDIA-1").status_code == expected


def test_the_task_page_shows_the_satisfaction_survey(console):
    ref = new_task(console)
    admin = add_person(console.db, "alba@example.com", "admin")
    with console.db.transaction() as session:
        task = session.get(Task, int(ref.removeprefix("T-")))
        session.add(Survey(task_id=task.id, contact_id=task.contact_id, due_at=utcnow(),
                           status="answered", via="interactive", sent_at=utcnow(), score=1,
                           good=False, answered_at=utcnow(), answered_by="button",
                           comment=personal("Tardaron <mucho>", task.contact.data_key_id)))
    with signed_in(console.url, admin) as http:
        page = http.get(f"/tasks/{ref}").text
    assert "Satisfaction survey" in page and "(not satisfied), by button" in page
    assert "Tardaron &lt;mucho&gt;" in page  # what the customer wrote, escaped
