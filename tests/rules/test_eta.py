"""When a deadline falls, phrased for the customer in es and en: the real deadline on the
business calendar (Mon-Fri 09:00-18:00 Madrid, 25 Dec closed), never the policy's duration."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules import due_times
from rules.eta import describe_due

from .helpers import config_with, madrid

CONFIG = config_with()
NNBSP = "\u202f"  # CLDR puts a narrow no-break space before AM/PM


@pytest.mark.parametrize(("now", "sla", "deadline", "es", "en"), [
    pytest.param(madrid(2026, 12, 1, 10), "vip", 0, "dentro de 30 minutos", "in 30 minutes",
                 id="inside-hours-soon"),
    pytest.param(madrid(2026, 12, 1, 10), "normal", 0, "hoy antes de las 12:00",
                 f"today by 12:00{NNBSP}PM", id="inside-hours-today"),
    pytest.param(madrid(2026, 12, 1, 10), "vip", 1, "hoy antes de las 14:00",
                 f"today by 2:00{NNBSP}PM", id="inside-hours-resolution"),
    pytest.param(madrid(2026, 11, 30, 19, 17), "vip", 0, "mañana entre las 9:00 y las 9:30",
                 f"tomorrow between 9:00{NNBSP}AM and 9:30{NNBSP}AM", id="after-hours"),
    pytest.param(madrid(2026, 12, 1, 7, 0), "vip", 0, "hoy entre las 9:00 y las 9:30",
                 f"today between 9:00{NNBSP}AM and 9:30{NNBSP}AM", id="before-opening"),
    pytest.param(madrid(2026, 12, 4, 17, 30), "high", 0, "el lunes antes de las 9:30",
                 f"on Monday by 9:30{NNBSP}AM", id="friday-evening-to-monday"),
    pytest.param(madrid(2026, 12, 5, 11), "high", 0, "el lunes entre las 9:00 y las 10:00",
                 f"on Monday between 9:00{NNBSP}AM and 10:00{NNBSP}AM", id="weekend"),
    pytest.param(madrid(2026, 12, 24, 17, 30), "normal", 0, "el lunes antes de las 10:30",
                 f"on Monday by 10:30{NNBSP}AM", id="holiday"),
    pytest.param(madrid(2026, 3, 27, 17), "normal", 0, "el lunes antes de las 10:00",
                 f"on Monday by 10:00{NNBSP}AM", id="dst-change-over-the-weekend"),
    pytest.param(madrid(2026, 3, 29, 1, 30), "urgent", 1, "hoy antes de las 4:30",
                 f"today by 4:30{NNBSP}AM", id="dst-change-during-a-24h-policy"),
    pytest.param(madrid(2026, 12, 1, 23), "urgent", 1, "mañana antes de la 1:00",
                 f"tomorrow by 1:00{NNBSP}AM", id="24h-policy-after-hours-no-opening"),
])
def test_the_deadline_is_said_as_a_person_would(now, sla, deadline, es, en) -> None:
    due = due_times(CONFIG, priority="normal", start=now, sla=sla)[deadline]
    business = CONFIG.policy(sla).business_hours
    said = {language: describe_due(due, now=now, calendar=CONFIG.calendar, language=language,
                                   business_hours=business) for language in ("es", "en")}
    assert said == {"es": es, "en": en}


@pytest.mark.parametrize(("due", "es", "en"), [
    (madrid(2026, 12, 1, 9), "lo antes posible", "as soon as possible"),
    (madrid(2026, 12, 1, 10, 59), "dentro de 59 minutos", "in 59 minutes"),
    (madrid(2026, 12, 1, 11), "dentro de 1 hora", "in 1 hour"),
    (madrid(2026, 12, 1, 12) + timedelta(seconds=20), "hoy antes de las 12:01",
     f"today by 12:01{NNBSP}PM"),
    (madrid(2026, 12, 7, 10), "el lunes antes de las 10:00", f"on Monday by 10:00{NNBSP}AM"),
    (madrid(2026, 12, 15, 10), "el 15 de diciembre antes de las 10:00",
     f"on December 15 by 10:00{NNBSP}AM"),
])
def test_past_soon_rounded_up_and_far_deadlines(due, es, en) -> None:
    now = madrid(2026, 12, 1, 10)  # a Tuesday, open
    said = {language: describe_due(due, now=now, calendar=CONFIG.calendar, language=language)
            for language in ("es", "en")}
    assert said == {"es": es, "en": en}


def test_other_languages_get_babels_own_day_and_time() -> None:
    now = madrid(2026, 11, 30, 19, 17)
    assert describe_due(madrid(2026, 12, 1, 9, 30), now=now, calendar=CONFIG.calendar,
                        language="fr") == "demain, 09:30"
    assert describe_due(madrid(2026, 12, 1, 9, 30), now=now, calendar=CONFIG.calendar,
                        language="xx-unknown") == (f"tomorrow between 9:00{NNBSP}AM and "
                                                   f"9:30{NNBSP}AM")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        describe_due(madrid(2026, 12, 1, 9).replace(tzinfo=None), now=madrid(2026, 12, 1, 9),
                     calendar=CONFIG.calendar, language="es")
