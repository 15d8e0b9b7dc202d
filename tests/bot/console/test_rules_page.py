"""The rules screen: the file in use with its hash and check (a broken file on disk shows
PATH:LINE:COL while the rules loaded before keep working), its escaped content, and "Test a
message" explaining what `opsbot rules test` explains, storing nothing."""

import hashlib
import html
import re

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.cli.rules import rules_app
from store.models import Task, TaskEvent
from tests.bot.console.kit import RULES, running_console

# One rule, and a comment that would be markup if the page did not escape the file.
SHOWN = RULES + """\
rules:
  - name: shipping
    when: {keywords: {any: [envío]}}
    then: {category: operations, team: logistics, skills: [shipping], tags: [shipping]}
# <script>alert('x')</script> & more
"""
AT = "2026-11-24T10:00:00+01:00"  # a Tuesday, 10:00 in Madrid


@pytest.fixture
def console(db, redis_url, tmp_path):
    with running_console(db, redis_url, tmp_path, rules=SHOWN) as console:
        yield console


def section(page: str, pre_id: str) -> str:
    """The text of the <pre> `pre_id`, unescaped."""
    return html.unescape(re.search(rf'<pre[^>]*id="{pre_id}">(.*?)</pre>', page, re.S).group(1))


def cli_explanation(path, *args: str) -> str:
    app = typer.Typer()
    app.add_typer(rules_app, name="rules")

    @app.callback()
    def main() -> None:
        """opsbot"""

    result = CliRunner().invoke(app, ["rules", "test", "--rules", str(path), *args])
    assert result.exit_code == 0, result.output
    return result.stdout.rstrip("\n")


def test_an_admin_sees_the_file_its_hash_check_and_escaped_content(console):
    console.sign_in("admin")
    path = console.services.rules.path
    page = console.get("/rules")
    assert page.status_code == 200, page.text
    assert str(path) in page.text
    assert hashlib.sha256(path.read_bytes()).hexdigest() in page.text
    assert re.search(r'id="rules-check">OK .*: 1 rules, 2 teams, 9 agents, timezone '
                     r"Europe/Madrid</p>", page.text)
    assert "<script>alert" not in page.text
    assert "# &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in page.text


@pytest.mark.parametrize("role, agent, status", [
    ("agent", "ana", 403), ("supervisor", "marta", 200), ("admin", None, 200)])
def test_supervisors_and_admins_only(console, role, agent, status):
    console.sign_in(role, agent=agent)
    assert console.get("/rules").status_code == status
    assert console.post("/rules/test", {"text": "hola"}).status_code == status


def test_a_broken_file_on_disk_shows_where_while_the_loaded_rules_keep_working(console):
    console.sign_in("admin")
    holder = console.services.rules
    holder.path.write_text(SHOWN.replace("least_loaded", "fastest", 1), encoding="utf-8")
    page = console.get("/rules")
    assert page.status_code == 200, page.text
    [line] = section(page.text, "rules-check").splitlines()
    assert line.startswith(f"{holder.path}:8:") and "teams.logistics.strategy" in line
    assert "opsbot keeps serving the rules it loaded before" in page.text
    assert holder.current.agent("ana") is not None  # the rules loaded before still serve
    assert "2 teams, 9 agents, timezone Europe/Madrid" in page.text  # … and say so
    tried = console.post("/rules/test", {"text": "hola", "at": AT})
    assert tried.status_code == 200 and "routing" in section(tried.text, "rules-explanation")


def test_test_a_message_explains_as_the_cli_does_and_stores_nothing(console):
    console.sign_in("supervisor", agent="marta")
    tried = console.post("/rules/test", {"text": "¿Dónde está mi envío?", "type": "text",
                                         "at": AT, "status": "vip"})
    assert tried.status_code == 200, tried.text
    explained = section(tried.text, "rules-explanation")
    assert explained == cli_explanation(console.services.rules.path, "--text",
                                        "¿Dónde está mi envío?", "--at", AT, "--status", "vip")
    assert "routing   assigned to" in explained
    candidates = re.findall(r"<tr[^>]*><td>(\w+)</td><td>([^<]*)</td></tr>",
                            tried.text)
    assert {agent for agent, _ in candidates} == {"ana", "pablo", "marta", "tina"}
    with console.db.transaction(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 0
        assert session.scalar(select(func.count()).select_from(TaskEvent)) == 0


def test_a_bad_instant_or_type_is_said_on_the_page(console):
    console.sign_in("admin")
    bad = console.post("/rules/test", {"text": "hola", "at": "yesterday"})
    assert bad.status_code == 400 and "is not ISO 8601" in html.unescape(bad.text)
    assert "hola" in bad.text  # the form keeps what was written
    kind = console.post("/rules/test", {"text": "hola", "type": "fax"})
    assert kind.status_code == 400 and "no message type" in html.unescape(kind.text)
    empty = console.post("/rules/test", {"text": "  "})
    assert empty.status_code == 400 and "Write the text of a message" in empty.text


def test_the_test_form_checks_the_csrf_token(console):
    console.sign_in("admin")
    refused = console.post("/rules/test", {"text": "hola"}, token=False)
    assert refused.status_code == 403
    assert "rules-explanation" not in refused.text
