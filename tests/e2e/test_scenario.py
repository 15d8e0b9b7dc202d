"""The whole flow, every part real but the three remote APIs: the demo scenario replayed
against `opsbot serve` and two `opsbot worker` processes, on SQLite and on PostgreSQL."""

from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from bot.cli.demo import DEFAULT_SCENARIO, settle
from rules import load_rules
from sandbox.graph import FakeGraph
from sandbox.scenario import Fakes, Player, load_scenario, seed_customers
from sandbox.slack import FakeSlack
from sandbox.stack import (
    PHONE_ID,
    free_port,
    opsbot_command,
    running,
    sandbox_environment,
    sandbox_sender,
)
from sandbox.telegram import FakeTelegram
from store.db import Database
from store.models import OutboxMessage, Survey, Task, TaskEvent
from tests.raw_database import stored_bytes

pytestmark = pytest.mark.timeout(240)

TRANSITIONS = {"created", "assign", "reassign", "accept", "decline", "start", "wait", "resume",
               "resolve", "close", "reopen"}


@pytest.fixture
def played(database_url, redis_url, tmp_path):
    """The demo scenario played to its end; yields (player, db, fakes)."""
    scenario = load_scenario(DEFAULT_SCENARIO)
    config = load_rules(scenario.rules)
    with FakeGraph() as graph, FakeSlack() as slack, FakeTelegram() as telegram:
        port = free_port()
        env = sandbox_environment(graph, slack, telegram, DATABASE_URL=database_url,
                                  REDIS_URL=redis_url, RULES_PATH=str(scenario.rules),
                                  LOG_LEVEL="DEBUG")
        commands = [opsbot_command("serve", "--port", str(port)), opsbot_command("worker"),
                    opsbot_command("worker")]
        with running(commands, env=env, cwd=tmp_path,
                     ready_url=f"http://127.0.0.1:{port}/readyz"):
            db = Database(database_url)
            seed_customers(db, scenario)
            player = Player(scenario, sandbox_sender(port), Fakes(slack, telegram, graph), db,
                            config, PHONE_ID, narrate=lambda line: None)
            player.play()
            verify = {"hub.mode": "subscribe", "hub.verify_token": env["WHATSAPP_VERIFY_TOKEN"],
                      "hub.challenge": "42"}
            assert httpx.get(f"http://127.0.0.1:{port}/webhooks/whatsapp", params=verify).text \
                == "42"
            settle(db)
            yield player, db, (graph, slack, telegram)
            db.dispose()


def test_demo_scenario_end_to_end(played, tmp_path):
    """The scenario's outcome, its audit trail, and its logs (one run of the scenario: it is
    the longest test)."""
    player, db, (graph, slack, telegram) = played
    assert_no_secret_reached_the_logs((graph, slack, telegram), tmp_path)
    assert_nothing_of_the_customers_in_clear(player.scenario, db.url)
    t = player.tasks
    with db.transaction() as session:
        tasks = {task.id: task for task in session.scalars(select(Task))}
        events = list(session.scalars(select(TaskEvent).order_by(TaskEvent.id)))
        outbox = list(session.scalars(select(OutboxMessage)))

    # Final state of every task: the "gracias" and the redelivery opened nothing.
    assert len(tasks) == 4
    assert {alias: (tasks[n].status, tasks[n].assignee_id) for alias, n in t.items()} == {
        "chaqueta": ("closed", "lucia"),
        "cafetera": ("closed", "javier"),
        "envio": ("closed", "marta"),
        "campana": ("accepted", tasks[t["campana"]].assignee_id),
    }
    assert tasks[t["cafetera"]].priority == "urgent" and "vip" in tasks[t["cafetera"]].tags

    # The audit trail of the tasks nobody let wait is exactly the story that was played.
    def actions(alias):
        return [e.action for e in events if e.task_id == t[alias] and e.action in TRANSITIONS]

    assert actions("chaqueta") == ["created", "assign", "accept", "close"]
    assert actions("cafetera") == ["created", "assign", "accept", "close"]
    assert actions("envio") == ["created", "assign", "decline", "assign", "accept", "close"]
    campaign = Counter(e.action for e in events if e.task_id == t["campana"])
    assert campaign["offer_expired"] >= 1 and campaign["escalated"] >= 1
    assert campaign["reminder"] >= 1 and campaign["accept"] == 1

    # What each customer received on WhatsApp: content, recipient, and nothing twice.
    received = [(m["to"], m["text"]["body"]) for m in graph.sent_messages()
                if m["type"] == "text"]
    assert len(received) == len(set(received))
    by_customer = Counter(to for to, _ in received)
    # Lucía and Carmen also got the survey's thanks.
    assert by_customer == {"34611000001": 4, "447700900002": 3, "34611000003": 4,
                           "447700900004": 1}
    texts = dict(Counter(received))
    assert ("34611000001", "¡Sí! Nos quedan 3 en talla M. ¿Te la reservo?") in texts
    # The ack promises the real deadline (40 s away, rounded up), not the policy's "40 s".
    assert ("447700900002", "Hi John, we opened ticket #2. A technician will answer in 1 "
            "minute.") in texts
    assert ("34611000003", "Hola Carmen, hemos cerrado la solicitud #3. ¿Qué tal te hemos "
            "atendido? Responde con un número del 1 al 5.") in texts
    assert tasks[t["envio"]].rating == 5
    assert_surveys(db, t, graph)

    # Every notification was delivered exactly once, to the agent it was meant for (a
    # survey answered by text before it was due is done without a send).
    assert all(row.status == "sent" and row.provider_message_id for row in outbox
               if row.kind != "survey")
    slack_rows = [row for row in outbox if row.channel == "slack"]
    slack_calls = [r for r in slack.requests
                   if r.name in ("chat.postMessage", "chat.update") and r.status == 200]
    assert len(slack_calls) == len(slack_rows)  # posts and card updates all come from the outbox
    delivered = Counter((row.channel, row.provider_chat_id, row.provider_message_id)
                        for row in outbox if row.kind != "card_update")
    assert max(delivered.values()) == 1
    first_card = next(m for m in slack.sent_messages(slack.dm_channel("U0LUCIA01")))
    assert "T-1" in first_card["text"]
    buttons = [e["text"]["text"] for b in first_card["blocks"] for e in b.get("elements", [])
               if e.get("type") == "button"]
    assert buttons[:2] == ["Accept", "Decline"]
    javier_cards = [m for m in telegram.sent_messages(100000003) if "reply_markup" in m]
    assert any("T-2" in m["text"] for m in javier_cards)


def assert_surveys(db, t: dict[str, int], graph) -> None:
    """Lucía answered her survey with a button, then commented; Carmen's "5" answered hers
    (sent or not yet); John's went out in English and waits for his answer."""
    with db.transaction() as session:
        surveys = {survey.task_id: survey for survey in session.scalars(select(Survey))}
        rating = session.get(Task, t["chaqueta"]).rating
    lucia, carmen, john = (surveys[t[alias]] for alias in ("chaqueta", "envio", "cafetera"))
    assert (lucia.status, lucia.via, lucia.answered_by, lucia.score, lucia.good, rating) == (
        "answered", "interactive", "button", 5, True, 5)
    assert lucia.comment == "Muy rápidos y amables, ¡gracias!"
    assert (carmen.status, carmen.answered_by, carmen.score) == ("answered", "text", 5)
    assert (john.status, john.via, john.language) == ("sent", "interactive", "en")
    questions = [m for m in graph.sent_messages() if m["type"] == "interactive"]
    assert {m["interactive"]["body"]["text"] for m in questions} >= {
        "¿Qué tal te atendimos?", "How did we do?"}


def assert_nothing_of_the_customers_in_clear(scenario, url: str) -> None:
    """The database's raw bytes (SQLite's files, a PostgreSQL dump) hold no customer's name,
    number or message: all sealed (store.crypto)."""
    raw = stored_bytes(url)
    personal = [value for spec in scenario.customers.values() for value in (spec.name,
                                                                             spec.phone)]
    personal += [step["text"] for step in scenario.steps if len(step.get("text", "")) > 8]
    personal += [step["say"].split(" ", 2)[2] for step in scenario.steps
                 if step.get("say", "").startswith(("reply ", "note "))]
    assert len(personal) > 12
    assert [value for value in personal if value.encode() in raw] == []


SECRETS = ("WHATSAPP_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "SLACK_BOT_TOKEN",
           "SLACK_SIGNING_SECRET", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET")


def assert_no_secret_reached_the_logs(fakes, tmp_path) -> None:
    """Web and workers logged at DEBUG through the whole scenario (all three channels, the
    verification GET with its token in the query): no line holds a secret."""
    env = sandbox_environment(*fakes)
    log = (tmp_path / "opsbot.log").read_text(errors="replace")
    assert "uvicorn.access" in log and "rq.worker" in log  # the processes did log
    leaked = {name for name in SECRETS if env[name] in log}
    assert leaked == set()
