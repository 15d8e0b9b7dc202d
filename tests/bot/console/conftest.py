"""The console's HTTP tests: opsbot running with the fakes (`running_api`), and password
hashes cheap enough for a test to sign several people in."""

import pytest

from tests.bot.api.kit import running_api
from tests.console_kit import CHEAP


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    monkeypatch.setattr("store.users.HASH_COST", CHEAP)


@pytest.fixture
def console(db, redis_url, tmp_path):
    with running_api(db, redis_url, tmp_path) as api:
        yield api
