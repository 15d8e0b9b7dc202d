"""The rules.yaml schema: one frozen pydantic model for the whole file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, timedelta
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BeforeValidator,
    Field,
    PlainValidator,
    PrivateAttr,
    field_validator,
    model_validator,
)

from rules.calendar import BusinessCalendar, Week
from rules.conditions import Condition, StrictModel, as_list
from rules.durations import parse_duration
from rules.enums import BreachStep, Category, Channel, Priority, Strategy
from rules.hours import TimeRange, build_week, parse_days, parse_ranges
from rules.survey import SurveyConfig
from rules.template_ref import TemplateRef
from rules.templates import REPLY_FIELDS, TITLE_FIELDS, check_template

Duration = Annotated[timedelta, PlainValidator(parse_duration)]
DaySet = Annotated[tuple[int, ...], PlainValidator(parse_days)]
Ranges = Annotated[tuple[TimeRange, ...], PlainValidator(parse_ranges)]
Names = Annotated[tuple[str, ...], BeforeValidator(as_list)]
TitleTemplate = Annotated[str, PlainValidator(lambda v: check_template(_text(v), TITLE_FIELDS))]
ReplyTemplate = Annotated[str, PlainValidator(lambda v: check_template(_text(v), REPLY_FIELDS))]


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


class BusinessHours(StrictModel):
    """Weekly opening hours (`mon-fri: "09:00-18:00"`) plus `holidays: [2026-12-25]`."""

    days: dict[DaySet, Ranges]
    holidays: frozenset[date] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _split_days(cls, value: object) -> object:
        # Admins write days and holidays side by side; the model keeps them apart.
        if not isinstance(value, dict):
            return value
        days = {key: item for key, item in value.items() if key != "holidays"}
        return {"days": days, **({"holidays": value["holidays"]} if "holidays" in value else {})}

    @model_validator(mode="after")
    def _some_hours(self) -> BusinessHours:
        if not any(self.week):
            raise ValueError("business_hours: give at least one day with hours")
        return self

    @cached_property
    def week(self) -> Week:
        return build_week(self.days)


class SlaPolicy(StrictModel):
    """Deadlines counted in business hours unless `business_hours: false`."""

    first_response: Duration
    resolution: Duration
    business_hours: bool = True


class Escalation(StrictModel):
    """Reminders at percentages of each deadline, then the breach ladder."""

    remind_at: tuple[int, ...] = (50, 80)
    unaccepted_after: Duration = timedelta(minutes=10)
    on_breach: tuple[BreachStep, ...] = (BreachStep.notify_supervisor,)

    @field_validator("remind_at", mode="before")
    @classmethod
    def _percentages(cls, value: object) -> object:
        items = as_list(value)
        if isinstance(items, list):
            return [item.strip().removesuffix("%") if isinstance(item, str) else item
                    for item in items]
        return items

    @field_validator("remind_at")
    @classmethod
    def _within_deadline(cls, percents: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 < percent < 100 for percent in percents):
            raise ValueError("reminder percentages must be between 1% and 99%")
        return tuple(sorted(set(percents)))


class RetentionPolicy(StrictModel):
    """How long data is kept (`retention:`); a kind left out is kept forever."""

    raw_events: Duration | None = None
    messages: Duration | None = None
    closed_tasks: Duration | None = None

    @field_validator("raw_events", "messages", "closed_tasks")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        # `0d` would delete everything at the next run: far more likely a typo than a wish.
        if value is not None and value <= timedelta(0):
            raise ValueError("a retention period must be longer than zero, e.g. 30d")
        return value

    def periods(self) -> dict[str, timedelta]:
        """The kinds that have a period, in the order a run removes them."""
        found = {"raw_events": self.raw_events, "messages": self.messages,
                 "closed_tasks": self.closed_tasks}
        return {kind: period for kind, period in found.items() if period is not None}


class Team(StrictModel):
    supervisor: str
    strategy: Strategy = Strategy.least_loaded
    slack_channel: str | None = None
    telegram_chat: int | None = None


class Agent(StrictModel):
    """A person who takes tasks; no `hours` means always working."""

    id: str
    name: str
    teams: Names = ()
    skills: Names = ()
    languages: Names = ()
    slack: str | None = None
    telegram: int | None = None
    capacity: int = Field(default=10, ge=1)
    hours: dict[DaySet, Ranges] | None = None
    preferred_channel: Channel | None = None
    admin: bool = False

    @cached_property
    def week(self) -> Week | None:
        return None if self.hours is None else build_week(self.hours)


class Action(StrictModel):
    """The `then:` of a rule."""

    category: Category | None = None
    title: TitleTemplate | None = None
    priority: Priority | None = None
    raise_priority: bool = False
    sla: str | None = None
    team: str | None = None
    skills: Names = ()
    tags: Names = ()
    stage: str | None = None
    reply: dict[str, ReplyTemplate] = {}
    ignore: bool = False


class Rule(StrictModel):
    """One entry of `rules:`; a missing `when` always matches."""

    name: str
    when: Condition = Condition()
    then: Action = Action()
    continue_: bool = Field(default=False, alias="continue")
    enabled: bool = True


class RulesConfig(StrictModel):
    """The whole rules.yaml. Build it with `parse_rules` / `load_rules`, which also check
    cross references (teams, skills, agents, SLA keys) and report positions."""

    version: int
    timezone: str
    business_hours: BusinessHours
    sla: dict[str, SlaPolicy]
    escalation: Escalation = Escalation()
    teams: dict[str, Team] = {}
    agents: list[Agent] = []
    rules: list[Rule] = []
    default_language: str = "es"
    reopen_within: Duration = timedelta(days=7)
    minutes_saved_per_task: float = Field(default=5, ge=0)
    closing_reply: dict[str, ReplyTemplate] = {}
    out_of_window_template: TemplateRef | None = None
    survey: SurveyConfig | None = None  # None: no satisfaction survey
    retention: RetentionPolicy = RetentionPolicy()
    # Filled by rules.matching.compiled_rules: the schema must not depend on evaluation.
    _compiled_rules: object | None = PrivateAttr(default=None)
    _source_sha256: str | None = PrivateAttr(default=None)  # set by rules.loader.parse_rules

    @field_validator("version")
    @classmethod
    def _supported(cls, version: int) -> int:
        if version != 1:
            raise ValueError(f"unsupported version {version}: this opsbot reads version 1")
        return version

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {name!r}: use an IANA name like "
                             "Europe/Madrid") from None
        return name

    @property
    def sha256(self) -> str:
        """The SHA-256 of the file text this config was read from (of its values when it was
        built otherwise): the version a recorded decision names."""
        if self._source_sha256 is None:
            self._source_sha256 = hashlib.sha256(self.model_dump_json().encode()).hexdigest()
        return self._source_sha256

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def calendar(self) -> BusinessCalendar:
        """The business hours and holidays in the business timezone, for SLA arithmetic."""
        hours = self.business_hours
        return BusinessCalendar(hours.week, hours.holidays, self.tz)

    @cached_property
    def _agents_by_id(self) -> dict[str, Agent]:
        return {agent.id: agent for agent in self.agents}

    def agent(self, agent_id: str) -> Agent | None:
        """Return the agent with this id, or None."""
        return self._agents_by_id.get(agent_id)

    def undefined(self, *, agent: str | None = None, teams: Iterable[str] = ()) -> str | None:
        """A sentence naming `agent` or those of `teams` this file does not define, or None
        when it defines them all (checked before a person is tied to them)."""
        if agent is not None and self.agent(agent) is None:
            return f"there is no agent {agent!r} in the rules; use one of its ids"
        unknown = [team for team in teams if team not in self.teams]
        if unknown:
            return (f"unknown team(s) {', '.join(unknown)}; choose among "
                    f"{', '.join(sorted(self.teams)) or '(none defined)'}")
        return None

    def agent_by_slack(self, user_id: str) -> Agent | None:
        """Return the agent whose Slack user id this is, or None."""
        return next((agent for agent in self.agents if agent.slack == user_id), None)

    def agent_by_telegram(self, user_id: int) -> Agent | None:
        """Return the agent whose Telegram user id this is, or None."""
        return next((agent for agent in self.agents if agent.telegram == user_id), None)

    def supervisor_of(self, team: str | None) -> str | None:
        """Return the supervisor's agent id of `team`, or None for an unknown team."""
        found = self.teams.get(team) if team else None
        return found.supervisor if found else None

    def team_members(self, team: str | None) -> list[Agent]:
        """Return the agents of `team` in file order (all agents when team is None)."""
        if team is None:
            return list(self.agents)
        return [agent for agent in self.agents if team in agent.teams]

    def policy(self, key: str | Priority) -> SlaPolicy:
        """Return the SLA policy `key`; a priority without its own policy uses `normal`.
        Raises KeyError for an unknown non-priority key (the loader prevents that)."""
        if key in self.sla:
            return self.sla[key]
        if key in Priority.__members__:
            return self.sla[Priority.normal]
        raise KeyError(key)
