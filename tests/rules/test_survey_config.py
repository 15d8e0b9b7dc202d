"""The `survey:` section: defaults that just work, and WhatsApp's limits refused with a clear
message at the line of the section."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules import RulesError, load_rules, parse_rules
from rules.survey import SurveyStyle

from .helpers import BASE
from .test_shipped_rules import SHIPPED


def survey_of(section: str):
    return parse_rules(BASE + section, "rules.yaml").survey


def test_no_section_means_no_survey():
    assert parse_rules(BASE).survey is None


@pytest.mark.parametrize("section", ["survey: {}\n", "survey: {delay: 1m}\n"])
def test_an_empty_section_sends_three_faces_in_spanish_or_english(section):
    survey = survey_of(section)
    assert survey.style is SurveyStyle.faces
    assert [(a.score, a.satisfied, a.title["es"], a.title["en"]) for a in survey.answers] == [
        (5, True, "😀 Bien", "😀 Good"), (3, False, "😐 Regular", "😐 Okay"),
        (1, False, "😞 Mal", "😞 Bad")]
    assert survey.delay in (timedelta(minutes=2), timedelta(minutes=1))
    assert (survey.comment_within, survey.thanks, survey.template) == (timedelta(0), {}, None)
    assert survey.language_for("fr", "en") == "en"


def test_the_scale_defaults_to_five_rows_four_and_five_satisfied():
    survey = survey_of("survey: {style: scale}\n")
    assert [a.score for a in survey.answers] == [5, 4, 3, 2, 1]
    assert [survey.is_good(score) for score in (5, 4, 3, 2, 1)] == [True, True, False, False,
                                                                     False]
    assert all(len(title) <= 24 for a in survey.answers for title in a.title.values())


def test_the_shipped_rules_have_a_survey_within_the_limits():
    survey = load_rules(SHIPPED).survey
    assert survey is not None and len(survey.answers) <= 3
    assert all(len(title) <= 20 for a in survey.answers for title in a.title.values())




def answers(*scores: int) -> str:
    return "\n".join(f"    - {{score: {n}, title: {{es: '{n}', en: '{n}'}}}}" for n in scores)


FOUR, SIX = answers(1, 2, 3, 4), answers(1, 2, 3, 4, 5, 5)


@pytest.mark.parametrize(("section", "message"), [
    (f"survey:\n  answers:\n{FOUR}\n", "the faces style has at most 3 answers (got 4)"),
    (f"survey:\n  style: scale\n  answers:\n{SIX}\n", "the scale style has at most 5 answers"),
    ("survey:\n  answers:\n    - {score: 5, title: {es: '😀 Muy bien, gracias!!', en: ok}}\n",
     "must have 1 to 20 characters (WhatsApp's limit for the faces style), it has 21"),
    ("survey:\n  style: scale\n  answers:\n"
     "    - {score: 5, title: {es: 'Excelente, de verdad, sí!!', en: ok}}\n",
     "must have 1 to 24 characters (WhatsApp's limit for the scale style), it has 26"),
    ("survey:\n  answers:\n    - {score: 5, title: {es: a, en: a}}\n"
     "    - {score: 5, title: {es: b, en: b}}\n", "each answer needs its own score"),
    ("survey:\n  answers:\n    - {score: 5, title: {es: Bien}}\n",
     "the answer scored 5 has no title in en (the question is written in it)"),
    ("survey:\n  answers:\n    - {score: 6, title: {es: a, en: a}}\n",
     "less than or equal to 5"),
    ("survey: {question: {es: ''}}\n", "survey.question.es: write 1 to 1024 characters"),
    ("survey: {style: scale, button: {es: 'Pulsa aquí para valorar'}}\n",
     "survey.button.es: 'Pulsa aquí para valorar' must have 1 to 20 characters"),
    ("survey: {style: scale, button: {}}\n", "survey.button: give the title"),
    ("survey: {style: stars}\n", "'faces' or 'scale'"),
    ("survey: {delay: soon}\n", "invalid duration 'soon'"),
    ("survey: {comment_within: 10 minutes}\n", "invalid duration"),
    ("survey: {template: {name: opsbot_survey}}\n", "languages"),
    ("survey: {dealy: 2m}\n", "unknown key 'dealy'"),
])
def test_a_survey_beyond_whatsapps_limits_is_refused_at_its_line(section, message):
    with pytest.raises(RulesError) as caught:
        parse_rules(BASE + section, "rules.yaml")
    [issue] = caught.value.issues
    assert message in issue.message
    assert issue.line > BASE.count("\n")  # in the survey section, not elsewhere
