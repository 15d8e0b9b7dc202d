"""Every job kind of `bot.core.jobs` names a real entry point, and every entry point has one."""

import inspect

import pytest

from bot.core.jobs import JOB_SPECS, RETRY, JobSpec, RetryPolicy
from bot.worker import entrypoints

SERVICE_ACCESS = {"install_services", "current_services"}


def job_functions() -> set[str]:
    return {name for name, value in vars(entrypoints).items()
            if inspect.isfunction(value) and value.__module__ == entrypoints.__name__
            and not name.startswith("_") and name not in SERVICE_ACCESS}


@pytest.mark.parametrize("spec", JOB_SPECS, ids=[spec.name for spec in JOB_SPECS])
def test_each_spec_names_an_entry_point(spec: JobSpec):
    module, _, name = spec.function.rpartition(".")
    assert module == entrypoints.__name__
    assert inspect.isfunction(getattr(entrypoints, name, None)), spec.function


def test_each_entry_point_has_a_spec():
    assert job_functions() == {spec.name for spec in JOB_SPECS}


@pytest.mark.parametrize(
    ("retry", "wait"), [(0, 2), (1, 2), (2, 10), (5, 600), (9, 600)],
)
def test_the_retry_policy_waits_longer_each_time(retry: int, wait: int):
    assert RETRY.wait_before(retry).total_seconds() == wait


def test_the_retry_policy_is_what_rq_retries_with():
    rq_retry = RetryPolicy((2, 10)).for_rq()
    assert (rq_retry.max, rq_retry.intervals) == (2, [2, 10])
