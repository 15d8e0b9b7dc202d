"""The agents' screen: who each person sees, and Away / Back through the command layer with
the audit trail naming who clicked."""

import html
import re

import pytest
from sqlalchemy import select

from bot.console.agents import AWAY, BACK
from bot.worker.drains import WAITING_KEY
from store.agents import get_agent_states, set_away
from store.events import Audit
from store.models import Task
from tests.bot.console.kit import running_console
from tests.notifiers.helpers import make_task


@pytest.fixture
def console(db, redis_url, tmp_path):
    with running_console(db, redis_url, tmp_path) as console:
        yield console


def rows(page: str) -> dict[str, str]:
    """Each agent's row of the table, by agent id."""
    return dict(re.findall(r'<tr data-agent="([^"]+)">(.*?)</tr>', page, re.S))


def buttons(row: str) -> list[str]:
    return re.findall(r'<button type="submit"[^>]*>(\w+)</button>', row)


def test_an_admin_sees_every_agent_with_availability_hours_and_load(console):
    with console.db.transaction() as session:
        make_task(session, assignee="ana")
        set_away(session, agent_id="pablo", away=True)
    console.sign_in("admin")
    page = console.get("/agents")
    assert page.status_code == 200, page.text
    found = rows(page.text)
    assert set(found) == {"ana", "pablo", "marta", "tina", "sara", "sofia", "alba", "dora",
                          "nico"}
    assert "1 / 5" in found["ana"] and "(20 %)" in found["ana"]
    assert "logistics" in found["ana"] and "slack" in found["ana"] and "telegram" in found["ana"]
    assert "away" in found["pablo"] and buttons(found["pablo"]) == ["Back"]
    assert "available" in found["ana"] and buttons(found["ana"]) == ["Away"]
    assert "working now" in found["dora"] and "(00:00-24:00)" in found["dora"]
    assert "not working now" in found["nico"] and "(off)" in found["nico"]
    assert "(always)" in found["ana"]


def test_a_supervisor_sees_and_manages_their_teams_agents_only(console):
    console.sign_in("supervisor", agent="sofia")
    found = rows(console.get("/agents").text)
    assert set(found) == {"sara", "sofia", "dora", "nico"}
    assert buttons(found["sara"]) == ["Away"]

    refused = console.post("/agents/ana/away")
    assert refused.status_code == 403
    assert "cannot mark Ana García away" in refused.text and "Traceback" not in refused.text
    with console.db.transaction(readonly=True) as session:
        assert "ana" not in get_agent_states(session)
    [denied] = console.system_events(Audit.DENIED)
    assert denied.actor == "agent:sofia"


def test_an_agent_sees_their_team_without_buttons_and_is_refused(console):
    console.sign_in("agent", agent="sara")
    page = console.get("/agents")
    assert page.status_code == 200
    found = rows(page.text)
    assert set(found) == {"sara", "sofia", "dora", "nico"}
    assert all(buttons(row) == [] for row in found.values())
    assert console.post("/agents/sara/away").status_code == 403
    assert console.system_events(AWAY) == []


def test_away_then_back_routes_the_waiting_tasks_and_audits_who_did_it(console):
    viewer = console.sign_in("supervisor", agent="marta")
    away = console.post("/agents/ana/away")
    assert away.status_code == 200, away.text
    assert "Ana García is away: no new tasks are routed to them." in away.text
    with console.db.transaction() as session:
        assert get_agent_states(session)["ana"].away
        for agent in ("pablo", "marta", "tina"):
            set_away(session, agent_id=agent, away=True)
        task_id = make_task(session).id  # nobody of logistics is available: it waits
    console.services.redis.delete(WAITING_KEY)

    back = console.post("/agents/ana/back")
    assert back.status_code == 200, back.text
    assert f"Ana García is back. Waiting tasks routed: T-{task_id} → ana" in back.text
    with console.db.transaction(readonly=True) as session:
        assert not get_agent_states(session)["ana"].away
        assert session.scalar(select(Task.assignee_id).where(Task.id == task_id)) == "ana"
    assert console.services.redis.exists(WAITING_KEY)  # a drain was asked for: the card
    assert [(e.actor, e.details) for e in console.system_events(AWAY)] == [
        (viewer.actor.label, {"agent": "ana"})]
    assert [(e.actor, e.details) for e in console.system_events(BACK)] == [
        ("agent:marta", {"agent": "ana"})]


def test_an_admin_of_no_agent_is_named_in_the_audit(console):
    console.sign_in("admin")
    assert console.post("/agents/sara/away").status_code == 200
    [event] = console.system_events(AWAY)
    assert event.actor == "console:admin@example.com"


def test_a_post_without_the_csrf_token_is_refused(console):
    console.sign_in("admin")
    refused = console.post("/agents/ana/away", token=False)
    assert refused.status_code == 403
    assert "expired" in refused.text
    assert console.system_events(AWAY) == []


def test_an_unknown_agent_is_a_404_page(console):
    console.sign_in("admin")
    missing = console.post("/agents/nobody/away")
    assert missing.status_code == 404 and "no agent 'nobody'" in html.unescape(missing.text)
