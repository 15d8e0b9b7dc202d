"""Rules compiled once at load: condition trees become closures, and rules are indexed by
keyword token so one message only tests the rules it could match."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from rules.calendar import is_business_time
from rules.conditions import (
    CampaignCondition,
    Condition,
    FlowCondition,
    HistoryCondition,
    KeywordSet,
    NumberRange,
    WordCount,
)
from rules.config import Rule, RulesConfig
from rules.enums import BusinessWindow
from rules.facts import ContactFacts, HistoryFacts, MessageFacts
from rules.text import tokenize

Reasons = tuple[str, ...]
Matcher = Callable[["MatchContext"], Reasons | None]


@dataclass
class MatchContext:
    """One message, tokenised once and shared by every rule tested against it."""

    config: RulesConfig
    message: MessageFacts
    contact: ContactFacts
    history: HistoryFacts
    now: datetime
    language: str | None
    tokens: list[str]
    token_set: frozenset[str] = frozenset()
    padded: str = ""
    _inside: bool | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.token_set = frozenset(self.tokens)
        self.padded = f" {' '.join(self.tokens)} "

    def inside_business_hours(self) -> bool:
        if self._inside is None:  # calendar maths only for rules that ask
            self._inside = is_business_time(self.config.calendar, self.now)
        return self._inside


@dataclass(frozen=True)
class CompiledRule:
    index: int
    rule: Rule
    # Closures never compare equal; leaving them out keeps equal configs equal once compiled.
    test: Matcher = field(compare=False)


@dataclass(frozen=True)
class CompiledRules:
    """Rules in file order, plus which rules each keyword token can trigger."""

    rules: tuple[CompiledRule, ...]
    by_token: dict[str, tuple[int, ...]]
    unindexed: frozenset[int]

    def candidates(self, token_set: frozenset[str]) -> list[CompiledRule]:
        """Return, in file order, the rules that could match a message with these tokens."""
        picked = set(self.unindexed)
        for token in token_set:
            picked.update(self.by_token.get(token, ()))
        return [self.rules[i] for i in sorted(picked)]


def compiled_rules(config: RulesConfig) -> CompiledRules:
    """Return the compiled rules of `config`: compiled on first use, then kept on the config
    (the loader asks at load time, so evaluation never pays for compiling)."""
    kept = config._compiled_rules
    if isinstance(kept, CompiledRules):
        return kept
    compiled = compile_rules(config)
    config._compiled_rules = compiled  # a private attribute: allowed on the frozen model
    return compiled


def compile_rules(config: RulesConfig) -> CompiledRules:
    """Return the enabled rules of `config` compiled and indexed."""
    compiled, by_token, unindexed = [], {}, set()
    for rule in config.rules:
        if not rule.enabled:
            continue
        position = len(compiled)
        compiled.append(CompiledRule(position, rule, compile_condition(rule.when)))
        tokens = index_tokens(rule.when)
        if tokens is None:
            unindexed.add(position)
        for token in tokens or ():
            by_token.setdefault(token, []).append(position)
    frozen = {token: tuple(ids) for token, ids in by_token.items()}
    return CompiledRules(tuple(compiled), frozen, frozenset(unindexed))


def index_tokens(cond: Condition) -> frozenset[str] | None:
    """Return tokens of which at least one must be in a matching message; None if unknown."""
    own = _keyword_tokens(cond.keywords) if cond.keywords else None
    sets = [own] if own is not None else []
    sets += [s for s in (index_tokens(c) for c in cond.all_ or ()) if s is not None]
    if cond.any_:
        branches = [index_tokens(c) for c in cond.any_]
        if all(b is not None for b in branches):
            sets.append(frozenset().union(*branches))
    # Every set is required (AND), so the smallest one is the sharpest filter.
    return min(sets, key=len) if sets else None


def _keyword_tokens(words: KeywordSet) -> frozenset[str] | None:
    if words.any_:
        return frozenset(tokenize(word)[0] for word in words.any_)
    if words.all_:
        return frozenset(tokenize(words.all_[0])[:1])
    return None


def compile_condition(cond: Condition) -> Matcher:
    """Return a closure giving the reasons `cond` holds for a message, or None."""
    parts = [_COMPILERS[name](getattr(cond, name)) for name in _COMPILERS
             if getattr(cond, name) is not None]
    if not parts:
        return lambda ctx: ()
    return parts[0] if len(parts) == 1 else _combine_all(parts)


def _contains(ctx: MatchContext, tokens: tuple[str, ...]) -> bool:
    if len(tokens) == 1:
        return tokens[0] in ctx.token_set
    return f" {' '.join(tokens)} " in ctx.padded


def _keywords(words: KeywordSet) -> Matcher:
    any_ = [(word, tuple(tokenize(word))) for word in words.any_]
    all_ = [tuple(tokenize(word)) for word in words.all_]
    none = [tuple(tokenize(word)) for word in words.none]

    def test(ctx: MatchContext) -> Reasons | None:
        found = next((word for word, tokens in any_ if _contains(ctx, tokens)), None)
        if any_ and found is None:
            return None
        if not all(_contains(ctx, tokens) for tokens in all_):
            return None
        if any(_contains(ctx, tokens) for tokens in none):
            return None
        return _keyword_reasons(found, words)

    return test


def _keyword_reasons(found: str | None, words: KeywordSet) -> Reasons:
    reasons = (f"keyword {found!r} found",) if found else ()
    if words.all_:
        reasons += ("keywords " + ", ".join(repr(w) for w in words.all_) + " all found",)
    if words.none:
        reasons += ("none of " + ", ".join(repr(w) for w in words.none) + " found",)
    return reasons


def _regex(pattern: str) -> Matcher:
    compiled = re.compile(pattern, re.IGNORECASE)

    def test(ctx: MatchContext) -> Reasons | None:
        match = compiled.search(ctx.message.text)
        return None if match is None else (f"regex {pattern!r} matched {match.group(0)!r}",)

    return test


def _word_count(bounds: WordCount) -> Matcher:
    low, high = bounds.min, bounds.max

    def test(ctx: MatchContext) -> Reasons | None:
        count = sum(1 for token in ctx.tokens if _WORD.match(token))
        if (low is not None and count < low) or (high is not None and count > high):
            return None
        return (f"{count} word{'' if count == 1 else 's'} ({_range_text(low, high)})",)

    return test


_WORD = re.compile(r"\w")  # a token of letters or digits, not emoji or punctuation


def _range_text(low: int | None, high: int | None) -> str:
    if low is None:
        return f"at most {high}"
    return f"at least {low}" if high is None else f"{low} to {high}"


def _types(types: tuple[str, ...]) -> Matcher:
    wanted = frozenset(types)
    return lambda ctx: (f"message type {ctx.message.type}",) if ctx.message.type in wanted else None


def _statuses(statuses: tuple[str, ...]) -> Matcher:
    wanted = frozenset(status.casefold() for status in statuses)

    def test(ctx: MatchContext) -> Reasons | None:
        status = ctx.contact.status
        return (f"customer status {status}",) if status.casefold() in wanted else None

    return test


def _languages(languages: tuple[str, ...]) -> Matcher:
    wanted = frozenset(languages)
    return lambda ctx: (f"language {ctx.language}",) if ctx.language in wanted else None


def _business_hours(window: BusinessWindow) -> Matcher:
    want_inside = window is BusinessWindow.inside

    def test(ctx: MatchContext) -> Reasons | None:
        if ctx.inside_business_hours() != want_inside:
            return None
        return (f"{window} business hours",)

    return test


def _history(cond: HistoryCondition) -> Matcher:
    checks = [check for check in _history_checks(cond) if check is not None]

    def test(ctx: MatchContext) -> Reasons | None:
        reasons = tuple(check(ctx.history) for check in checks)
        return None if None in reasons else reasons

    return test


def _history_checks(cond: HistoryCondition) -> list[Callable[[HistoryFacts], str | None] | None]:
    def when(flag: bool | None, holds: Callable[[HistoryFacts], bool], yes: str, no: str):
        if flag is None:
            return None
        return lambda h: (yes if flag else no) if holds(h) == flag else None

    days = cond.days_since_last_contact
    return [
        when(cond.first_contact, lambda h: h.first_contact, "first contact", "returning customer"),
        when(cond.open_task, lambda h: h.open_task, "has an open task", "no open task"),
        None if cond.min_tasks is None else lambda h: (
            f"{h.task_count} previous tasks (min {cond.min_tasks})"
            if h.task_count >= cond.min_tasks else None),
        None if cond.max_tasks is None else lambda h: (
            f"{h.task_count} previous tasks (max {cond.max_tasks})"
            if h.task_count <= cond.max_tasks else None),
        None if cond.last_category is None else lambda h: (
            f"last category {h.last_category}" if h.last_category in cond.last_category else None),
        None if days is None else lambda h: _days_reason(h.days_since_last_contact, days),
    ]


def _days_reason(days: float | None, bounds: NumberRange) -> str | None:
    if days is None:
        return None
    if (bounds.gt is not None and not days > bounds.gt) or (
            bounds.lt is not None and not days < bounds.lt):
        return None
    return f"{days:g} days since last contact"


def _campaign(cond: CampaignCondition) -> Matcher:
    ref, payload = cond.referral, cond.button_payload
    needle = ref.casefold() if isinstance(ref, str) else None

    def test(ctx: MatchContext) -> Reasons | None:
        got_ref, got_payload = ctx.message.referral, ctx.message.button_payload
        reasons: Reasons = ()
        if ref is not None:
            if ref is True and got_ref or needle and got_ref and needle in got_ref.casefold():
                reasons += (f"came from ad {got_ref!r}",)
            elif ref is False and not got_ref:
                reasons += ("not from an ad",)
            else:
                return None
        if payload is not None:
            if not (got_payload and got_payload.casefold().startswith(payload.casefold())):
                return None
            reasons += (f"button payload {got_payload!r}",)
        return reasons

    return test


def _flow(cond: FlowCondition) -> Matcher:
    name = cond.name.casefold() if cond.name else None
    wanted = {key: _wanted(value) for key, value in (cond.fields or {}).items()}

    def test(ctx: MatchContext) -> Reasons | None:
        got_name, answers = ctx.message.flow_name, ctx.message.flow_fields
        if got_name is None and not answers:
            return None
        reasons: Reasons = ()
        if name is not None:
            if not (got_name and got_name.casefold() == name):
                return None
            reasons += (f"flow {got_name!r}",)
        for key, values in wanted.items():
            answer = answers.get(key)
            if answer is None or answer == "" or answer == [] or (
                    values is not None and _answer_key(answer) not in values):
                return None
            reasons += (f"flow field {key} = {answer!r}",)
        return reasons

    return test


def _wanted(value: object) -> frozenset[str] | None:
    """The answers a flow field condition accepts (None: any answer)."""
    if value is True:
        return None
    values = value if isinstance(value, tuple) else (value,)
    return frozenset(_answer_key(v) for v in values)


def _answer_key(value: object) -> str:
    return str(value).casefold()


def _all(conds: tuple[Condition, ...]) -> Matcher:
    return _combine_all([compile_condition(c) for c in conds])


def _combine_all(parts: list[Matcher]) -> Matcher:
    def test(ctx: MatchContext) -> Reasons | None:
        reasons: Reasons = ()
        for part in parts:
            found = part(ctx)
            if found is None:
                return None
            reasons += found
        return reasons

    return test


def _any(conds: tuple[Condition, ...]) -> Matcher:
    parts = [compile_condition(c) for c in conds]

    def test(ctx: MatchContext) -> Reasons | None:
        return next((found for part in parts if (found := part(ctx)) is not None), None)

    return test


def _not(cond: Condition) -> Matcher:
    inner = compile_condition(cond)
    shown = cond.model_dump(exclude_none=True, exclude_defaults=True, by_alias=True)
    reason = (f"not {shown}",)
    return lambda ctx: reason if inner(ctx) is None else None


_COMPILERS: dict[str, Callable[[object], Matcher]] = {
    "type": _types,
    "customer_status": _statuses,
    "language": _languages,
    "campaign": _campaign,
    "flow": _flow,
    "history": _history,
    "keywords": _keywords,
    "regex": _regex,
    "word_count": _word_count,
    "business_hours": _business_hours,
    "all_": _all,
    "any_": _any,
    "not_": _not,
}
