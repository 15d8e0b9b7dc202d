"""The Rules page's "Replay a candidate": an uploaded or edited rules file replayed on the
recorded decisions of a period, with the summary and changed messages `opsbot rules replay`
gives; supervisors and admins only, CSRF-checked, a broken candidate shown as file:line:col,
nothing changed."""

import html
import re

import pytest
from sqlalchemy import func, select

from store.models import RuleDecision, Task, TaskEvent
from tests.bot.cli.test_rules_replay import CANDIDATE, RULES, record_traffic
from tests.bot.console.kit import CSRF, running_console

PERIOD = {"start": "2026-11-23T00:00Z", "end": "2026-11-25T00:00Z"}


@pytest.fixture
def console(db, redis_url, tmp_path):
    record_traffic(db)
    with running_console(db, redis_url, tmp_path) as console:
        yield console


def shown(page: str, element_id: str) -> str:
    """The text inside the element `element_id`, tags dropped, unescaped."""
    inner = re.search(rf'id="{element_id}">(.*?)</(?:dd|pre)>', page, re.S).group(1)
    return html.unescape(re.sub(r"<[^>]+>", " ", inner)).split()


def replay(console, candidate: str = "", *, upload: tuple[str, bytes] | None = None,
           token: bool = True, **fields):
    data = {"candidate": candidate, **PERIOD, **fields, **({"csrf_token": CSRF} if token else {})}
    files = {"upload": (*upload, "text/yaml")} if upload else None
    return console.client.post("/console/rules/replay", data=data, files=files)


def counts(console):
    with console.db.transaction(readonly=True) as session:
        return [session.scalar(select(func.count()).select_from(model))
                for model in (Task, TaskEvent, RuleDecision)]


def test_the_page_offers_the_current_file_to_edit(console):
    console.sign_in("admin")
    page = console.get("/rules")
    assert page.status_code == 200
    content = console.services.rules.path.read_text(encoding="utf-8")
    textarea = re.search(r'<textarea name="candidate"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert html.unescape(textarea.group(1)) == content
    assert 'value="7d"' in page.text


def test_an_edited_candidate_shows_the_summary_and_changed_messages(console):
    console.sign_in("admin")
    before = counts(console)
    page = replay(console, CANDIDATE)
    assert page.status_code == 200, page.text
    assert shown(page.text, "replay-replayed") == ["5"]
    assert shown(page.text, "replay-changed") == ["4"]
    assert shown(page.text, "replay-priority") == ["normal", "→", "high:", "2"]
    assert shown(page.text, "replay-team") == ["support", "→", "helpdesk:", "2"]
    assert shown(page.text, "replay-category") == ["no", "change"]
    assert "Mi pedido #### no ha llegado" in page.text and "4411" not in page.text
    assert "priority: normal → high" in html.unescape(page.text)
    assert counts(console) == before  # nothing stored, not even an audit event


def test_the_same_rules_change_nothing(console):
    console.sign_in("admin")
    page = replay(console, RULES)
    assert shown(page.text, "replay-changed") == ["0"]
    assert "No message would change." in page.text


@pytest.mark.parametrize(("role", "agent", "status"), [
    ("supervisor", "marta", 200), ("admin", None, 200), ("agent", "ana", 403)])
def test_supervisors_and_admins_replay_an_uploaded_file(console, role, agent, status):
    console.sign_in(role, agent=agent)
    page = replay(console, "ignored: the file wins", upload=("next.yaml", CANDIDATE.encode()))
    assert page.status_code == status
    if status == 200:
        assert shown(page.text, "replay-changed") == ["4"]


def test_a_broken_candidate_shows_file_line_col(console):
    console.sign_in("admin")
    broken = CANDIDATE.replace("then: {ignore: true}", "then: {ignroe: true}")
    page = replay(console, upload=("next.yaml", broken.encode()))
    assert page.status_code == 400
    [line] = shown(page.text, "replay-issues")[:1]
    assert line.startswith("next.yaml:") and "ignroe" in html.unescape(page.text)
    assert "replay-result" not in page.text


@pytest.mark.parametrize(("fields", "said"), [
    ({"start": "yesterday"}, "is not ISO 8601"),
    ({"start": "", "end": "", "since": "a week"}, "is not a duration"),
])
def test_a_bad_period_is_said_on_the_page(console, fields, said):
    console.sign_in("admin")
    page = replay(console, CANDIDATE, **fields)
    assert page.status_code == 400 and said in html.unescape(page.text)


def test_no_candidate_and_a_binary_file_are_refused(console):
    console.sign_in("admin")
    empty = replay(console, "  ")
    assert empty.status_code == 400 and "Upload a rules file" in empty.text
    binary = replay(console, upload=("x.yaml", b"\xff\xfe\x00"))
    assert binary.status_code == 400 and "not UTF-8" in binary.text


def test_the_replay_form_checks_the_csrf_token(console):
    console.sign_in("admin")
    refused = replay(console, CANDIDATE, token=False)
    assert refused.status_code == 403 and "replay-result" not in refused.text
