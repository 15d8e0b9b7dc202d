"""Scenarios: customers and agents replayed against a running opsbot (see examples/demo.yaml).

A `Player` sends every step through opsbot's real HTTP endpoints — signed WhatsApp webhooks,
signed Slack requests, Telegram updates with the secret — presses the buttons of the cards the
fake Slack and Telegram received (and a customer the reply buttons of the last interactive
WhatsApp message the fake Graph received for them), and waits for the database to show each
step's effect.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from ruamel.yaml import YAML
from sqlalchemy import func, select

from rules import Agent, RulesConfig
from sandbox.graph import FakeGraph
from sandbox.inbound import (
    Sender,
    slack_button,
    slack_command,
    telegram_callback,
    telegram_command,
    whatsapp_message,
)
from sandbox.slack import FakeSlack
from sandbox.telegram import FakeTelegram
from store.contacts import upsert_contact
from store.db import Database
from store.keys import blind_index
from store.models import (
    Contact,
    InboundEvent,
    Message,
    OutboxMessage,
    OutboxStatus,
    Task,
    TaskEvent,
)
from store.types import utcnow

_ALIAS = re.compile(r"\{(\w+)\}")


class ScenarioFailed(Exception):
    """A step's effect did not show up in time; the message says which and what was seen."""


class CustomerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str
    name: str
    status: str = "lead"


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    rules: Path
    customers: dict[str, CustomerSpec]
    steps: list[dict[str, Any]]


def load_scenario(path: Path) -> Scenario:
    """The scenario in `path`; its `rules` path is made relative to the file."""
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    scenario = Scenario.model_validate(data)
    return scenario.model_copy(update={"rules": (path.parent / scenario.rules).resolve()})


@dataclass
class Fakes:
    slack: FakeSlack
    telegram: FakeTelegram
    graph: FakeGraph | None = None  # needed by the steps where a customer presses a button


@dataclass
class Player:
    scenario: Scenario
    sender: Sender
    fakes: Fakes
    db: Database
    config: RulesConfig
    phone_id: str
    narrate: Callable[[str], None] = print
    tasks: dict[str, int] = field(default_factory=dict)
    bodies: dict[str, dict] = field(default_factory=dict)
    _update_ids: int = 1000

    def play(self) -> None:
        """Runs every step in order. Raises ScenarioFailed at the first that does not happen."""
        for number, step in enumerate(self.scenario.steps, 1):
            kind = next(k for k in ("customer", "redeliver", "agent", "expect") if k in step)
            try:
                getattr(self, f"_{kind}")(step)
            except ScenarioFailed as exc:
                raise ScenarioFailed(f"step {number} {step}: {exc}") from exc

    # customers --------------------------------------------------------------------------

    def _customer(self, step: dict) -> None:
        spec = self.scenario.customers[step["customer"]]
        # A customer answers what they have read: a rating follows the question that asks it.
        self._wait(lambda s: not _owed_to(s, spec.phone),
                   f"opsbot's messages to {spec.name} to go out", timeout=5, fail=False)
        part = self._choice(spec, step) if "press" in step else _message_part(step)
        body = whatsapp_message(wa_id=spec.phone, name=spec.name, message=part,
                                phone_id=self.phone_id)
        wamid = body["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        self._post_whatsapp(body)
        if "task" in step:
            self.bodies[step["task"]] = body
            self.tasks[step["task"]] = self._wait(
                lambda s: s.scalar(
                    select(Message.task_id).where(Message.provider_message_id == wamid)
                ),
                f"a task for {spec.name}'s message",
            )
        else:
            self._wait(lambda s: _processed(s, wamid), f"{spec.name}'s message to be processed")

    def _choice(self, spec: CustomerSpec, step: dict) -> dict:
        """The message part of the customer's press on the button titled `step["press"]` of
        the last interactive message the fake Graph received for them."""
        graph, title = self.fakes.graph, step["press"]
        if graph is None:
            raise ScenarioFailed("a customer presses a WhatsApp button: give Fakes the graph")

        def find(_s):
            sent = [m for m in graph.sent_messages()
                    if m.get("to") == spec.phone and m.get("type") == "interactive"]
            return _reply_choice(sent[-1], title) if sent else None

        choice = self._wait(find, f"a WhatsApp message to {spec.name} with a «{title}» button",
                            timeout=float(step.get("within", 20)))
        self.narrate(f"{spec.name} presses «{title}» on WhatsApp")
        return {"type": "interactive", "interactive": choice}

    def _redeliver(self, step: dict) -> None:
        task = f"T-{self.tasks[step['redeliver']]}"
        self.narrate(f"Meta redelivers the webhook of the message that opened {task}")
        self._post_whatsapp(self.bodies[step["redeliver"]])

    def _post_whatsapp(self, body: dict) -> None:
        response = self.sender.whatsapp(body)
        if response.status_code != 200:
            raise ScenarioFailed(f"the webhook answered {response.status_code}: {response.text}")

    # agents -----------------------------------------------------------------------------

    def _agent(self, step: dict) -> None:
        task_alias = step.get("task") or _first_alias(step.get("say", ""))
        agent = self._resolve_agent(step["agent"], task_alias)
        before = self._agent_events(agent.id)
        if "press" in step:
            self._press(agent, step["press"], self.tasks[task_alias])
        else:
            self._say(agent, _ALIAS.sub(lambda m: f"T-{self.tasks[m.group(1)]}", step["say"]))
        self._wait(
            lambda s: self._agent_events(agent.id, s) > before,
            f"{agent.id}'s action to be recorded",
        )

    def _resolve_agent(self, who: str, task_alias: str | None) -> Agent:
        if who == "assignee":
            task_id = self.tasks[task_alias]
            who = self._wait(
                lambda s: s.scalar(select(Task.assignee_id).where(Task.id == task_id)),
                f"T-{task_id} to have an assignee",
            )
        agent = self.config.agent(who)
        if agent is None:
            raise ScenarioFailed(f"no agent {who!r} in the rules")
        return agent

    def _press(self, agent: Agent, verb: str, task_id: int) -> None:
        if agent.slack and self._slack_button(agent, verb, task_id):
            return
        if agent.telegram and self._telegram_button(agent, verb, task_id):
            return
        raise ScenarioFailed(f"{agent.id} has no card for T-{task_id} with a {verb} button")

    def _slack_button(self, agent: Agent, verb: str, task_id: int) -> bool:
        def find(_s):
            channel = self.fakes.slack.dm_channel(agent.slack)
            for posted_channel, message in reversed(self.fakes.slack.posted()):
                if posted_channel == channel:
                    button = _slack_action(message, verb, task_id)
                    if button:
                        return message, button
            return None

        found = self._wait(find, f"a Slack card for T-{task_id}", timeout=5, fail=False)
        if not found:
            return False
        message, button = found
        channel = self.fakes.slack.dm_channel(agent.slack)
        payload = slack_button(
            user_id=agent.slack, channel=channel, message=message, action=button,
            response_url=self.fakes.slack.response_url(f"btn{task_id}"),
        )
        self.narrate(f"{agent.name} presses «{verb}» on the Slack card of T-{task_id}")
        _check(self.sender.slack_action(payload))
        return True

    def _telegram_button(self, agent: Agent, verb: str, task_id: int) -> bool:
        def find(_s):
            for chat, message in reversed(self.fakes.telegram.posted()):
                data = chat == agent.telegram and _telegram_data(message, verb, task_id)
                if data:
                    return message, data
            return None

        found = self._wait(find, f"a Telegram card for T-{task_id}", timeout=5, fail=False)
        if not found:
            return False
        message, data = found
        update = telegram_callback(
            user_id=agent.telegram, first_name=agent.name.split()[0], message=message,
            data=data, update_id=self._next_update_id(),
        )
        self.narrate(f"{agent.name} presses «{verb}» on the Telegram card of T-{task_id}")
        _check(self.sender.telegram(update))
        return True

    def _say(self, agent: Agent, text: str) -> None:
        if agent.slack:
            self.narrate(f"{agent.name} on Slack: /ops {text}")
            fields = slack_command(
                user_id=agent.slack, text=text,
                response_url=self.fakes.slack.response_url(f"cmd{self._next_update_id()}"),
            )
            _check(self.sender.slack_form(fields))
            return
        self.narrate(f"{agent.name} on Telegram: /{text}")
        update = telegram_command(
            user_id=agent.telegram, first_name=agent.name.split()[0], text=f"/{text}",
            update_id=self._next_update_id(),
        )
        _check(self.sender.telegram(update))

    def _next_update_id(self) -> int:
        self._update_ids += 1
        return self._update_ids

    # expectations -----------------------------------------------------------------------

    def _expect(self, step: dict) -> None:
        want = step["expect"]
        timeout = float(step.get("within", 15))
        if "tasks" in want:
            count = select(func.count(Task.id))
            self._wait(lambda s: s.scalar(count) == want["tasks"], f"{want['tasks']} tasks",
                       timeout=timeout)
            time.sleep(1.0)  # a duplicate would open its task within this second
            self._wait(lambda s: s.scalar(count) == want["tasks"], f"{want['tasks']} tasks",
                       timeout=0)
            return
        task_id = self.tasks[want["task"]]
        self._wait(lambda s: _task_matches(s, task_id, want), f"T-{task_id} to have {want}",
                   timeout=timeout)

    # helpers ----------------------------------------------------------------------------

    def _agent_events(self, agent_id: str, session=None) -> int:
        query = select(func.count(TaskEvent.id)).where(TaskEvent.actor == f"agent:{agent_id}")
        if session is not None:
            return session.scalar(query)
        with self.db.transaction(readonly=True) as s:
            return s.scalar(query)

    def _wait(self, probe, what: str, *, timeout: float = 15, fail: bool = True):
        deadline = time.monotonic() + timeout
        while True:
            with self.db.transaction(readonly=True) as session:
                result = probe(session)
            if result:
                return result
            if time.monotonic() > deadline:
                if fail:
                    raise ScenarioFailed(f"waited {timeout:.0f}s for {what}")
                return None
            time.sleep(0.1)


def seed_customers(db: Database, scenario: Scenario) -> None:
    """Creates the scenario's customers with their CRM status (as a CRM import would)."""
    with db.transaction() as session:
        for spec in scenario.customers.values():
            contact, created = upsert_contact(session, wa_id=spec.phone, user_id=None,
                                              name=spec.name, now=utcnow())
            if created:
                contact.crm_status = spec.status


def _message_part(step: dict) -> dict:
    if "button" in step:
        return {"type": "button", "button": step["button"]}
    part: dict[str, Any] = {"type": "text", "text": {"body": step["text"]}}
    if "referral" in step:
        part["referral"] = {"source_type": "ad", "source_url": "https://fb.me/sandbox",
                            "body": step["text"], **step["referral"]}
    return part


def _reply_choice(message: dict, title: str) -> dict | None:
    """The `interactive` part of a customer's answer choosing `title` among the reply buttons
    (or list rows) of `message`, or None when it has no such choice."""
    interactive = message.get("interactive") or {}
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        kind, choices = "button_reply", [b.get("reply") or {} for b in action.get("buttons", [])]
    else:
        kind = "list_reply"
        choices = [row for section in action.get("sections", []) for row in section["rows"]]
    found = next((c for c in choices if c.get("title") == title), None)
    return {"type": kind, kind: {"id": found["id"], "title": title}} if found else None


def _owed_to(session, wa_id: str) -> bool:
    query = (select(OutboxMessage.id).join(Contact, OutboxMessage.contact_id == Contact.id)
             .where(Contact.wa_id_index == blind_index(wa_id),
                    OutboxMessage.status == OutboxStatus.PENDING))
    return session.scalar(query.limit(1)) is not None


def _processed(session, wamid: str) -> bool:
    status = session.scalar(
        select(InboundEvent.status).where(InboundEvent.provider_event_id == wamid)
    )
    return status is not None and status != "pending"


def _task_matches(session, task_id: int, want: dict) -> bool:
    task = session.get(Task, task_id)
    if "status" in want and task.status != want["status"]:
        return False
    if "assignee" in want and task.assignee_id != want["assignee"]:
        return False
    if "not_assignee" in want and task.assignee_id == want["not_assignee"]:
        return False
    if "event" in want:
        query = select(TaskEvent.id).where(
            TaskEvent.task_id == task_id, TaskEvent.action == want["event"]
        )
        return session.scalar(query.limit(1)) is not None
    return True


def _first_alias(text: str) -> str | None:
    match = _ALIAS.search(text)
    return match.group(1) if match else None


def _mentions(text: str, task_id: int) -> bool:
    return re.search(rf"(?<!\d){task_id}(?!\d)", text) is not None


def _slack_action(message: dict, verb: str, task_id: int) -> dict | None:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            label = f"{element.get('action_id', '')} {element.get('value', '')}"
            if element.get("type") == "button" and verb in label.lower() and _mentions(
                label, task_id
            ):
                return {**element, "block_id": block.get("block_id", "actions")}
    return None


def _telegram_data(message: dict, verb: str, task_id: int) -> str | None:
    keyboard = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    for row in keyboard:
        for button in row:
            data = button.get("callback_data") or ""
            if verb in data.lower() and _mentions(data, task_id):
                return data
    return None


def _check(response) -> None:
    if response.status_code >= 300:
        raise ScenarioFailed(f"opsbot answered {response.status_code}: {response.text[:200]}")
