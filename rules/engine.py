"""Evaluate the rules against one message: which rules match, and the task they describe."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rules.config import Action, RulesConfig
from rules.enums import Category, Priority
from rules.facts import ContactFacts, HistoryFacts, MessageFacts
from rules.matching import MatchContext, compiled_rules
from rules.templates import render_template
from rules.text import detect_language, tokenize

DEFAULT_CATEGORY = Category.support
_TITLE_LENGTH = 80


@dataclass(frozen=True)
class RuleMatch:
    name: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """What to do with a message. `reply` holds UNRENDERED templates per language;
    `language` is the message language used for conditions and routing."""

    matched: tuple[RuleMatch, ...]
    ignore: bool
    category: str
    title: str
    priority: Priority
    sla: str
    team: str | None
    skills: tuple[str, ...]
    tags: tuple[str, ...]
    stage: str | None
    reply: dict[str, str] = field(default_factory=dict)
    language: str | None = None


@dataclass
class _Draft:
    """The decision being built; first set wins, tags add up, priority only goes up."""

    matched: list[RuleMatch] = field(default_factory=list)
    ignore: bool = False
    category: str | None = None
    title: str | None = None
    priority: Priority | None = None
    raise_steps: int = 0
    sla: str | None = None
    team: str | None = None
    skills: tuple[str, ...] | None = None
    tags: dict[str, None] = field(default_factory=dict)
    stage: str | None = None
    reply: dict[str, str] | None = None

    def apply(self, action: Action) -> None:
        self.ignore = self.ignore or action.ignore
        self.category = self.category or action.category
        self.title = self.title or action.title
        if action.priority is not None:
            self.priority = Priority.highest(self.priority or action.priority, action.priority)
        self.raise_steps += action.raise_priority
        self.sla = self.sla or action.sla
        self.team = self.team or action.team
        self.skills = self.skills or action.skills or None
        self.tags.update(dict.fromkeys(action.tags))
        self.stage = self.stage or action.stage
        self.reply = self.reply or dict(action.reply) or None


def message_language(message: MessageFacts, contact: ContactFacts,
                     tokens: list[str] | None = None) -> str | None:
    """Return the language to use: given, detected from the text, else the contact's."""
    return message.language or detect_language(message.text, tokens) or contact.language


def evaluate(config: RulesConfig, *, message: MessageFacts, contact: ContactFacts,
             history: HistoryFacts, now: datetime) -> Decision:
    """Return the Decision for one message. Rules run in file order; the first match stops
    unless it says `continue: true`. No match gives built-in defaults with matched=()."""
    compiled = compiled_rules(config)
    tokens = tokenize(message.text)
    ctx = MatchContext(config, message, contact, history, now,
                       message_language(message, contact, tokens), tokens)
    draft = _Draft()
    for candidate in compiled.candidates(ctx.token_set):
        reasons = candidate.test(ctx)
        if reasons is None:
            continue
        draft.matched.append(RuleMatch(candidate.rule.name, reasons))
        draft.apply(candidate.rule.then)
        if not candidate.rule.continue_:
            break
    return _finish(draft, ctx)


def _finish(draft: _Draft, ctx: MatchContext) -> Decision:
    priority = (draft.priority or Priority.normal).raised(draft.raise_steps)
    category = draft.category or DEFAULT_CATEGORY
    return Decision(
        matched=tuple(draft.matched),
        ignore=draft.ignore,
        category=str(category),
        title=_title(draft.title, ctx),
        priority=priority,
        sla=draft.sla or str(priority),
        team=draft.team,
        skills=draft.skills or (),
        tags=tuple(draft.tags),
        stage=draft.stage,
        reply=draft.reply or {},
        language=ctx.language,
    )


def _title(template: str | None, ctx: MatchContext) -> str:
    if template is None:
        return default_title(ctx.message)
    contact = ctx.contact
    values = {"contact": {"name": contact.name or "", "status": contact.status,
                          "language": contact.language},
              "message": {"text": ctx.message.text, "type": str(ctx.message.type)}}
    # An unknown contact name must not leave "Avería — " dangling.
    return render_template(template, values).strip().rstrip("—–-:|,").strip()


def default_title(message: MessageFacts) -> str:
    """Return the message text cut to one line, or `[image]` for text-less messages."""
    text = " ".join(message.text.split())
    if not text:
        return f"[{message.type}]"
    return text if len(text) <= _TITLE_LENGTH else text[: _TITLE_LENGTH - 1] + "…"
