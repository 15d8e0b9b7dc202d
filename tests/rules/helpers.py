"""A small rules file to build test configs from, and fixed instants."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from rules import ContactFacts, Decision, HistoryFacts, MessageFacts, MessageType, evaluate
from rules.config import RulesConfig
from rules.loader import parse_rules

BASE = """\
version: 1
timezone: Europe/Madrid
business_hours: {mon-fri: "09:00-18:00", holidays: [2026-12-25]}
sla:
  urgent: {first_response: 15m, resolution: 2h, business_hours: false}
  high: {first_response: 1h, resolution: 8h}
  normal: {first_response: 2h, resolution: 24h}
  vip: {first_response: 30m, resolution: 4h}
escalation: {remind_at: [50%, 80%], unaccepted_after: 10m, on_breach: [notify_supervisor]}
teams:
  logistics: {supervisor: marta, strategy: least_loaded}
  sales: {supervisor: ana, strategy: round_robin}
  support: {supervisor: ana, strategy: sticky}
agents:
  - {id: ana, name: Ana García, teams: [logistics, sales, support], skills: [shipping, products],
     languages: [es, en], slack: U0ANA01, telegram: 123456789, capacity: 5,
     hours: {mon-fri: "08:00-16:00"}}
  - {id: bob, name: Bob Smith, teams: [logistics, sales, support], skills: [shipping],
     languages: [en], slack: U0BOB01, capacity: 2}
  - {id: marta, name: Marta López, teams: [logistics, support], skills: [shipping, returns],
     languages: [es], telegram: 222, preferred_channel: telegram, capacity: 5,
     hours: {mon-fri: ["09:00-13:00", "15:00-19:00"], sat: "10:00-14:00"}}
"""

BASE_HOURS = '{mon-fri: "09:00-18:00", holidays: [2026-12-25]}'

# Friday 6 March 2026, 10:00 in Madrid (CET, UTC+1): inside business hours.
FRIDAY_10 = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)


def config_with(rules: str = "", extra: str = "", business_hours: str | None = None,
                ) -> RulesConfig:
    """Return BASE plus a `rules:` block (YAML list items, any indentation) and extra keys;
    `business_hours` replaces the flow mapping of BASE's business hours."""
    body = textwrap.indent(textwrap.dedent(rules).strip(), "  ") if rules.strip() else ""
    base = BASE
    if business_hours is not None:
        base = base.replace(BASE_HOURS, business_hours)
    text = base + textwrap.dedent(extra) + ("rules:\n" + body + "\n" if body else "")
    return parse_rules(text, "test.yaml")


def decide(config: RulesConfig, text: str = "", *, type: MessageType = MessageType.text,
           status: str = "lead", now: datetime = FRIDAY_10, history: HistoryFacts | None = None,
           **message: object) -> Decision:
    """Return evaluate() for a message with sensible defaults."""
    return evaluate(config, message=MessageFacts(text, type, **message),
                    contact=ContactFacts("Ana Pérez", status=status),
                    history=history or HistoryFacts(), now=now)


def madrid(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """Return the UTC instant of a Madrid wall-clock time."""
    local = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo("Europe/Madrid"))
    return local.astimezone(UTC)
