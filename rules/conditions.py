"""The `when:` schema: conditions an admin can combine with all / any / not."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rules.enums import BusinessWindow, MessageType
from rules.text import tokenize


class StrictModel(BaseModel):
    """Frozen, and refuses unknown keys so typos are reported instead of ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def as_list(value: object) -> object:
    """Let admins write one value where a list is expected (`type: text`)."""
    return [value] if isinstance(value, str | int | float | bool) else value


class KeywordSet(StrictModel):
    """`keywords: [a, b]` means any of them; the mapping form adds all / none."""

    any_: tuple[str, ...] = Field(default=(), alias="any")
    all_: tuple[str, ...] = Field(default=(), alias="all")
    none: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _expand_list(cls, value: object) -> object:
        if isinstance(value, str | list):
            return {"any": as_list(value)}
        return value

    @field_validator("any_", "all_", "none", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return as_list(value)

    @field_validator("any_", "all_", "none")
    @classmethod
    def _searchable(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        for word in words:
            if not tokenize(word):
                raise ValueError(f"keyword {word!r} has no letters, digits or emoji to match")
        return words

    @model_validator(mode="after")
    def _not_empty(self) -> KeywordSet:
        if not (self.any_ or self.all_ or self.none):
            raise ValueError("keywords: give at least one keyword")
        return self


class NumberRange(StrictModel):
    """`{gt: 30}` / `{lt: 7}` / both."""

    gt: float | None = None
    lt: float | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> NumberRange:
        if self.gt is None and self.lt is None:
            raise ValueError("give gt, lt or both")
        return self


class WordCount(StrictModel):
    """`{max: 6}` / `{min: 3}` / both, inclusive: how many words the text has. Words are
    runs of letters or digits (`tokenize`); emoji and punctuation do not count."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _a_range(self) -> WordCount:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is more than max ({self.max})")
        return self


class HistoryCondition(StrictModel):
    """The customer's past tasks; every key given must hold."""

    first_contact: bool | None = None
    open_task: bool | None = None
    min_tasks: int | None = Field(default=None, ge=0)
    max_tasks: int | None = Field(default=None, ge=0)
    last_category: tuple[str, ...] | None = None
    days_since_last_contact: NumberRange | None = None

    @field_validator("last_category", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return as_list(value)


class CampaignCondition(StrictModel):
    """Replies to marketing: `referral: true` (any ad) or an ad id / headline substring;
    `button_payload` matches a payload that equals or starts with the given text."""

    referral: bool | str | None = None
    button_payload: str | None = None


class FlowCondition(StrictModel):
    """Answers to a WhatsApp Flow: `name` is the flow's name (its token up to the first ":",
    e.g. `csat` for a token `csat:T-12`); `fields` maps a field to the value or values it
    must have (`true`: answered at all). Several keys mean AND."""

    name: str | None = None
    fields: dict[str, bool | str | int | float | tuple[str | int | float, ...]] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> FlowCondition:
        if self.name is None and not self.fields:
            raise ValueError("give a flow `name`, `fields`, or both")
        return self


class Condition(StrictModel):
    """One `when:` mapping; several keys mean AND, and `all/any/not` nest."""

    keywords: KeywordSet | None = None
    regex: str | None = None
    word_count: WordCount | None = None
    type: tuple[MessageType, ...] | None = None
    customer_status: tuple[str, ...] | None = None
    history: HistoryCondition | None = None
    business_hours: BusinessWindow | None = None
    campaign: CampaignCondition | None = None
    flow: FlowCondition | None = None
    language: tuple[str, ...] | None = None
    all_: tuple[Condition, ...] | None = Field(default=None, alias="all")
    any_: tuple[Condition, ...] | None = Field(default=None, alias="any")
    not_: Condition | None = Field(default=None, alias="not")

    @field_validator("type", "customer_status", "language", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return as_list(value)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return pattern

    @field_validator("all_", "any_")
    @classmethod
    def _not_empty(cls, items: tuple[Condition, ...] | None) -> tuple[Condition, ...] | None:
        if items is not None and not items:
            raise ValueError("give at least one condition")
        return items
