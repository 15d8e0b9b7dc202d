"""Evaluate the rules against one message: which rules match, and the task they describe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from rules.conditions import Condition
from rules.config import Action, RulesConfig
from rules.enums import Category, Priority
from rules.facts import ContactFacts, HistoryFacts, MessageFacts
from rules.matching import MatchContext, compiled_rules
from rules.templates import render_template
from rules.text import detect_language, load_language_models, tokenize

DEFAULT_CATEGORY = Category.support
_TITLE_LENGTH = 80


@dataclass(frozen=True)
class RuleMatch:
    name: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """What to do with a message. `reply` holds UNRENDERED templates per language;
    `language` is the message language used for conditions, routing and the reply (decided
    on first use: detecting it costs more than evaluating the rules)."""

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
    decide_language: Callable[[], str | None] = field(default=lambda: None, repr=False,
                                                      compare=False)

    @property
    def language(self) -> str | None:
        return self.decide_language()


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


def message_language(config: RulesConfig, message: MessageFacts,
                     contact: ContactFacts) -> str | None:
    """Return the language to use: given, detected from the text (among the usual languages
    and those `config` names), else the contact's."""
    return (message.language or detect_language(message.text, named_languages(config))
            or contact.language)


def prepare_language_detection(config: RulesConfig) -> None:
    """Loads the language models that evaluating messages under `config` uses."""
    load_language_models(named_languages(config))


def named_languages(config: RulesConfig) -> set[str]:
    """Return the languages `config` names: its default, the agents', the rules' (replies
    and `language:` conditions), the closing reply's and the out-of-window template's."""
    named = {config.default_language, *config.closing_reply}
    for agent in config.agents:
        named.update(agent.languages)
    for rule in config.rules:
        named.update(rule.then.reply)
        _condition_languages(rule.when, named)
    template = config.out_of_window_template
    return named.union(template.languages if template else ())


def _condition_languages(cond: Condition, into: set[str]) -> None:
    into.update(cond.language or ())
    for inner in (cond.all_ or ()) + (cond.any_ or ()) + ((cond.not_,) if cond.not_ else ()):
        _condition_languages(inner, into)


class _Context(MatchContext):
    """A MatchContext that decides the message language on first use: most messages meet
    no `language:` condition, and detection costs more than testing every rule."""

    @property
    def language(self) -> str | None:
        if self._language is _UNDECIDED:
            self._language = message_language(self.config, self.message, self.contact)
        return self._language

    @language.setter
    def language(self, value: str | None) -> None:  # MatchContext.__init__ sets it
        self._language = value


_UNDECIDED = object()  # not a language: the language is still to be decided


def evaluate(config: RulesConfig, *, message: MessageFacts, contact: ContactFacts,
             history: HistoryFacts, now: datetime) -> Decision:
    """Return the Decision for one message. Rules run in file order; the first match stops
    unless it says `continue: true`. No match gives built-in defaults with matched=()."""
    compiled = compiled_rules(config)
    tokens = tokenize(message.text)
    ctx = _Context(config, message, contact, history, now, _UNDECIDED, tokens)
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
        decide_language=lambda: ctx.language,
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
