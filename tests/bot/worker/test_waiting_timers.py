"""The digest job at an agent's shift start first routes the tasks waiting for her teams."""

from sqlalchemy import select

from bot.usecases.digest import DigestOutcome
from bot.worker.entrypoints import send_digest
from store.models import OutboxMessage, Task, TaskStatus
from tests.bot.workers_support import make_services, new_task, write_rules


def test_the_shift_start_job_routes_a_waiting_task_and_lists_it(database_url, redis_url,
                                                                 tmp_path):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    waiting = new_task(services, sla="long", assign_to=None)  # nobody was available
    assert send_digest("ana", "2026-11-24") == DigestOutcome.QUEUED
    with services.db.transaction() as session:
        task = session.get(Task, waiting)
        assert (task.status, task.assignee_id) == (TaskStatus.ASSIGNED, "ana")
        [digest] = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "digest"))
        assert digest.payload["notification"]["title"] == "Your open tasks (1)"
    services.close()
