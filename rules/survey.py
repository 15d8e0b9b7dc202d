"""The `survey:` section of rules.yaml: the satisfaction survey sent after a task is closed.

Two styles: `faces`, up to three reply buttons, and `scale`, a list of up to five rows. Every
answer carries a score on the task's 1–5 rating scale and whether it counts as satisfied
(`good`). WhatsApp's limits are checked here, when the file is read: a reply button's title
holds 20 characters, a list row's 24, a list's button 20, a message body 1,024.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import Field, PlainValidator, model_validator

from rules.conditions import StrictModel
from rules.durations import parse_duration
from rules.template_ref import TemplateRef

Duration = Annotated[timedelta, PlainValidator(parse_duration)]

BUTTON_TITLE_LIMIT = 20  # a reply button's title (WhatsApp)
ROW_TITLE_LIMIT = 24  # a list row's title (WhatsApp)
MAX_BUTTONS = 3  # reply buttons in one message (WhatsApp)
MAX_ROWS = 5  # the 1-5 scale (WhatsApp allows 10 rows)
BODY_LIMIT = 1024  # an interactive message's body (WhatsApp)
GOOD_FROM = 4  # on the 1-5 scale, 4 and 5 count as satisfied


class SurveyStyle(StrEnum):
    faces = "faces"  # reply buttons
    scale = "scale"  # a list of rows


class SurveyAnswer(StrictModel):
    """One button or row: its score (1–5), whether it counts as satisfied, its titles."""

    score: int = Field(ge=1, le=5)
    good: bool | None = None  # None: 4 and 5 are good
    title: dict[str, str] = Field(min_length=1)

    @property
    def satisfied(self) -> bool:
        return self.good if self.good is not None else self.score >= GOOD_FROM


_FACES = (
    SurveyAnswer(score=5, good=True, title={"es": "😀 Bien", "en": "😀 Good"}),
    SurveyAnswer(score=3, good=False, title={"es": "😐 Regular", "en": "😐 Okay"}),
    SurveyAnswer(score=1, good=False, title={"es": "😞 Mal", "en": "😞 Bad"}),
)
_SCALE = tuple(
    SurveyAnswer(score=score, title={"es": f"{'⭐' * score} {es}", "en": f"{'⭐' * score} {en}"})
    for score, es, en in ((5, "Excelente", "Excellent"), (4, "Buena", "Good"),
                          (3, "Regular", "Okay"), (2, "Mala", "Poor"), (1, "Muy mala", "Bad"))
)


class SurveyConfig(StrictModel):
    """`survey:`; every key is optional (`survey: {}` sends the faces in Spanish or
    English two minutes after the closing)."""

    delay: Duration = timedelta(minutes=2)
    style: SurveyStyle = SurveyStyle.faces
    question: dict[str, str] = {"es": "¿Qué tal te atendimos?", "en": "How did we do?"}
    answers: tuple[SurveyAnswer, ...] = _FACES  # left out: the style's defaults
    button: dict[str, str] = {"es": "Valorar", "en": "Rate"}  # opens the scale's list
    thanks: dict[str, str] = {}
    comment_within: Duration = timedelta(0)  # 0: no comments
    template: TemplateRef | None = None  # quick replies in the order of `answers`

    @model_validator(mode="before")
    @classmethod
    def _default_answers(cls, value: object) -> object:
        if not isinstance(value, dict) or value.get("answers"):
            return value
        scale = value.get("style") == SurveyStyle.scale
        return {**value, "answers": _SCALE if scale else _FACES}

    @model_validator(mode="after")
    def _fits_whatsapp(self) -> SurveyConfig:
        _check_durations(self)
        _check_texts(self)
        _check_answers(self)
        return self

    @property
    def title_limit(self) -> int:
        return BUTTON_TITLE_LIMIT if self.style is SurveyStyle.faces else ROW_TITLE_LIMIT

    def language_for(self, *wanted: str | None) -> str:
        """The first of `wanted` the question is written in, else its first language."""
        return next((code for code in wanted if code in self.question), next(iter(self.question)))

    def answer(self, score: int) -> SurveyAnswer | None:
        """The answer with this score, or None."""
        return next((answer for answer in self.answers if answer.score == score), None)

    def is_good(self, score: int) -> bool:
        """Whether `score` counts as satisfied: its answer says so, else 4 and 5 do."""
        answer = self.answer(score)
        return answer.satisfied if answer is not None else score >= GOOD_FROM


def _check_durations(survey: SurveyConfig) -> None:
    if survey.delay < timedelta(0) or survey.comment_within < timedelta(0):
        raise ValueError("survey: delay and comment_within cannot be negative")


def _check_texts(survey: SurveyConfig) -> None:
    if not survey.question:
        raise ValueError("survey.question: give the question in at least one language")
    for language, text in survey.question.items():
        if not text.strip() or len(text) > BODY_LIMIT:
            raise ValueError(f"survey.question.{language}: write 1 to {BODY_LIMIT} characters")
    if survey.style is SurveyStyle.scale and not survey.button:
        raise ValueError("survey.button: give the title of the button that opens the list")
    for language, text in survey.button.items():
        if not text.strip() or len(text) > BUTTON_TITLE_LIMIT:
            raise ValueError(f"survey.button.{language}: {text!r} must have 1 to "
                             f"{BUTTON_TITLE_LIMIT} characters (WhatsApp's limit)")


def _check_answers(survey: SurveyConfig) -> None:
    most = MAX_BUTTONS if survey.style is SurveyStyle.faces else MAX_ROWS
    if len(survey.answers) > most:
        raise ValueError(f"survey.answers: the {survey.style} style has at most {most} answers "
                         f"(got {len(survey.answers)})")
    scores = [answer.score for answer in survey.answers]
    if len(set(scores)) != len(scores):
        raise ValueError(f"survey.answers: each answer needs its own score (got {scores})")
    for answer in survey.answers:
        missing = [code for code in survey.question if code not in answer.title]
        if missing:
            raise ValueError(f"survey.answers: the answer scored {answer.score} has no title in "
                             f"{', '.join(missing)} (the question is written in it)")
        for language, title in answer.title.items():
            if not title.strip() or len(title) > survey.title_limit:
                raise ValueError(
                    f"survey.answers: the title {title!r} ({language}) must have 1 to "
                    f"{survey.title_limit} characters (WhatsApp's limit for the "
                    f"{survey.style} style), it has {len(title)}")
