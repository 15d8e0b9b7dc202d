"""Shift starts and the daily digest: scheduled at every opening of each agent's hours, the
digest sent once a day."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.usecases.digest import DigestOutcome, next_shift_start
from bot.worker.entrypoints import send_digest
from bot.worker.timers import schedule_digests
from rules.loader import parse_rules
from store.models import OutboxMessage
from store.types import utcnow
from tests.bot.workers_support import make_services, new_task, write_rules

DIGEST_RULES = """\
version: 1
timezone: Europe/Madrid
business_hours: {mon-fri: "09:00-18:00"}
sla:
  normal: {first_response: 1h, resolution: 2h, business_hours: false}
teams:
  ops: {supervisor: sam}
agents:
  - {id: ana, name: Ana, teams: [ops], slack: U0ANA,
     hours: {mon-fri: ["08:00-12:00", "15:00-19:00"]}}
  - {id: bob, name: Bob, teams: [ops], slack: U0BOB}
  - {id: sam, name: Sam, slack: U0SAM}
"""


@pytest.mark.parametrize(
    ("agent", "now", "expected"),
    [
        # Friday 6 March 2026, 07:00 Madrid (06:00 UTC): Ana starts at 08:00 Madrid
        ("ana", datetime(2026, 3, 6, 6, 0, tzinfo=UTC), datetime(2026, 3, 6, 7, 0, tzinfo=UTC)),
        # Friday 10:00 Madrid: her day began; next is her 15:00 shift
        ("ana", datetime(2026, 3, 6, 9, 0, tzinfo=UTC), datetime(2026, 3, 6, 14, 0, tzinfo=UTC)),
        # Friday 16:00 Madrid: next is Monday 08:00
        ("ana", datetime(2026, 3, 6, 15, 0, tzinfo=UTC), datetime(2026, 3, 9, 7, 0, tzinfo=UTC)),
        # Bob has no hours: the business hours (09:00 Madrid)
        ("bob", datetime(2026, 3, 6, 6, 0, tzinfo=UTC), datetime(2026, 3, 6, 8, 0, tzinfo=UTC)),
    ],
)
def test_next_shift_start(agent, now, expected):
    config = parse_rules(DIGEST_RULES, "rules.yaml")
    assert next_shift_start(config, agent, now=now) == expected


def test_digest_is_scheduled_once_and_sent_once(database_url, redis_url, tmp_path):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    new_task(services, sla="long", assign_to="ana")
    config = services.rules.current
    first = schedule_digests(services.jobs, config, now=utcnow())
    assert schedule_digests(services.jobs, config, now=utcnow()) == first  # same ids, nothing new
    assert len(services.jobs.queue.scheduled_job_registry.get_job_ids()) == 3
    day = next_shift_start(config, "ana", now=utcnow()).astimezone(config.tz).date().isoformat()
    assert send_digest("ana", day) == DigestOutcome.QUEUED
    assert send_digest("ana", day) == DigestOutcome.NOT_QUEUED
    with services.db.transaction() as session:
        [row] = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "digest"))
        assert row.agent_id == "ana" and "1" in row.payload["notification"]["title"]
    services.close()


def test_a_split_day_schedules_its_afternoon_shift_and_sends_one_digest(
        database_url, redis_url, tmp_path):
    """Ana works 08:00-12:00 and 15:00-19:00: at 10:00 her next shift start is 15:00 (it
    routes the tasks waiting for her team), and her digest of that day goes out once."""
    services = make_services(database_url, redis_url, write_rules(tmp_path, DIGEST_RULES))
    config = services.rules.current
    friday_10 = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    ids = schedule_digests(services.jobs, config, now=friday_10)
    assert "digest-ana-20260306T1400" in ids
    assert send_digest("ana", "2026-03-06") == DigestOutcome.QUEUED  # the morning shift
    assert send_digest("ana", "2026-03-06") == DigestOutcome.NOT_QUEUED  # the afternoon one
