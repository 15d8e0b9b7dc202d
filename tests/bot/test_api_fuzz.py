"""The integration API fuzzed from its own OpenAPI schema (schemathesis): generated requests,
valid and not, against the running app over HTTP with a key that has every scope; no answer
is a 500, and every answer (problem details included) matches the schema. Bounded: a few
dozen examples per operation. Marked slow: `-m "not slow"` skips it locally."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from store.apikeys import create_api_key
from store.types import utcnow
from tests.bot.world import running_world

pytestmark = pytest.mark.slow
# No 500, and the status, content type, headers and body of every answer are the schema's.
# Not `positive_data_acceptance`: a cursor is opaque (any string fits its schema), and one
# this API did not give is refused with a 422 problem, as documented.
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_headers_conformance,
          checks.response_schema_conformance]
EXAMPLES = 50  # per operation (~13 operations): some 20 s per database
SCOPES = ["tasks:read", "tasks:write", "contacts:read", "contacts:write", "events:read",
          "webhooks:admin", "contacts:admin"]


@pytest.fixture
def api(db, redis_url, tmp_path):
    """(schema, base URL, headers) of a running app whose database has a task."""
    with running_world(db, redis_url, tmp_path) as world:
        with db.transaction() as session:
            _, key = create_api_key(session, name="fuzz", scopes=SCOPES, agent_id=None,
                                    now=utcnow())
        world.assigned_task()
        base = world.send.base_url
        schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
        yield schema, f"{base}/api/v1", {"Authorization": f"Bearer {key}"}


def test_no_500_and_every_answer_matches_the_schema(api):
    # Each operation's strategy driven by Hypothesis directly: schemathesis' pytest plugin
    # does not load under pytest 9 (its lazy fixtures read a private attribute).
    schema, base_url, headers = api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

        fuzz()
