"""opsbot rules: the rules.yaml schema and loader, evaluation, routing, the business calendar
and SLA timers.
Pure: no clock, database or network (except RulesHolder, which re-reads the file)."""

from rules.calendar import (
    BusinessCalendar,
    add_business_time,
    business_time_between,
    is_business_time,
)
from rules.conditions import Condition
from rules.config import (
    Action,
    Agent,
    BusinessHours,
    Escalation,
    Rule,
    RulesConfig,
    SlaPolicy,
    Team,
    TemplateRef,
)
from rules.durations import format_duration, parse_duration
from rules.engine import Decision, RuleMatch, evaluate, prepare_language_detection
from rules.enums import (
    BreachStep,
    BusinessWindow,
    Category,
    Channel,
    DeadlineKind,
    MessageType,
    Priority,
    Strategy,
)
from rules.errors import RuleIssue, RulesError
from rules.facts import ContactFacts, HistoryFacts, MessageFacts
from rules.holder import RulesHolder
from rules.loader import load_rules, parse_rules
from rules.routing import AgentState, Candidate, RoutingResult, route
from rules.sla import (
    DEADLINES,
    UNACCEPTED,
    Deadlines,
    PushedDues,
    Reminder,
    SlaClock,
    Timer,
    compute_deadlines,
    due_times,
    percent_instant,
    plan_timers,
    policy_for,
    push_due_times,
)
from rules.templates import pick_language_text, render_template
from rules.text import detect_language

__all__ = [
    "DEADLINES", "UNACCEPTED", "Action", "Agent", "AgentState", "BreachStep", "BusinessCalendar",
    "BusinessHours", "BusinessWindow", "Candidate", "Category", "Channel", "Condition",
    "ContactFacts", "Deadlines", "DeadlineKind", "Decision", "Escalation", "HistoryFacts",
    "MessageFacts", "MessageType", "Priority", "PushedDues", "Reminder", "RoutingResult", "Rule",
    "RuleIssue", "RuleMatch", "RulesConfig", "RulesError", "RulesHolder", "SlaClock",
    "SlaPolicy", "Strategy", "Team", "TemplateRef", "Timer", "add_business_time",
    "business_time_between", "compute_deadlines", "detect_language", "due_times", "evaluate",
    "format_duration", "is_business_time", "load_rules", "parse_duration", "parse_rules",
    "percent_instant", "pick_language_text", "plan_timers", "policy_for",
    "prepare_language_detection", "push_due_times", "render_template", "route",
]
