"""The console in Chromium: sign-in with a TOTP code, the live board and its filters, a reply
from the task page, the KPI plots and the CSV, and what is refused. Each page is saved under
var/screenshots/ (for the README and for reviewing a change by eye)."""

import csv
import io
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from sandbox.inbound import whatsapp_message
from store.db import Database
from store.kpis import KpiFilters, compute_kpis, period_from
from store.models import Task
from store.types import utcnow
from tests.bot.api.kit import Api, running_api
from tests.browser.conftest import screenshot
from tests.console_kit import CHEAP, Person, add_person
from tests.notifiers.helpers import make_task


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    monkeypatch.setattr("store.users.HASH_COST", CHEAP)


@pytest.fixture
def console(sqlite_template, redis_url, tmp_path) -> Iterator[Api]:
    """opsbot on SQLite with the fake Graph, Slack and Telegram APIs, served in a thread.
    Tests ask for it before `page`, so that the page (and its live stream) closes first."""
    path = tmp_path / "opsbot.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    try:
        with running_api(db, redis_url, tmp_path) as api:
            yield api
    finally:
        db.dispose()


def sign_in(page: Page, api: Api, person: Person, *, shots: bool = False) -> None:
    page.goto(api.url + "/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    if shots:
        screenshot(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code").fill(person.code())
    page.get_by_role("button", name=re.compile("Continue|Confirm")).click()
    expect(page.get_by_role("heading", name="Open tasks")).to_be_visible()


def new_task(api: Api, *, team: str = "logistics", assignee: str | None = None) -> str:
    with api.db.transaction() as session:
        task = make_task(session, team=team, assignee=assignee)
        task.contact.last_inbound_at = utcnow()
        task.first_response_due = utcnow() + timedelta(hours=1)
        task.resolution_due = utcnow() + timedelta(hours=8)
        return task.ref


def test_sign_in_with_password_and_code_and_a_wrong_code_refused(console, page):
    person = add_person(console.db, "ines@example.com", "admin")
    page.goto(console.url + "/console/")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    wrong = "000000" if person.code() != "000000" else "111111"
    page.get_by_label("Code").fill(wrong)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")
    screenshot(page, "code-refused")
    page.get_by_label("Code").fill(person.code())
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Open tasks")).to_be_visible()
    expect(page.get_by_text("ines@example.com · admin")).to_be_visible()


def test_enrolment_shows_a_qr_code(console, page):
    person = add_person(console.db, "sofia@example.com", "supervisor", agent="sofia",
                        teams=("sales",), enrolled=False)
    page.goto(console.url + "/console/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Set up your authenticator")).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    screenshot(page, "enrolment")
    page.get_by_label("Code").fill(person.code())
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Open tasks")).to_be_visible()


def test_board_filters(console, page):
    logistics, sales = new_task(console), new_task(console, team="sales", assignee="sara")
    sign_in(page, console, add_person(console.db, "ines@example.com", "admin"), shots=True)
    rows = page.locator("tr[data-ref]")
    expect(rows).to_have_count(2)
    page.locator("select[name=team]").select_option("sales")
    expect(rows).to_have_count(1)
    expect(page.locator(f'tr[data-ref="{sales}"]')).to_be_visible()
    expect(page).to_have_url(re.compile(r"team=sales"))  # the filter is in the address
    page.locator("select[name=team]").select_option("")
    page.locator("select[name=sla]").select_option("waiting_team")
    expect(rows).to_have_count(1)
    expect(page.locator(f'tr[data-ref="{logistics}"]')).to_be_visible()
    expect(page.locator(f'tr[data-ref="{logistics}"] time.countdown')).to_contain_text(
        re.compile(r"^in "))  # a live countdown to the first-response deadline
    screenshot(page, "board")


def test_a_task_from_a_signed_webhook_appears_without_a_reload(console, page):
    sign_in(page, console, add_person(console.db, "ines@example.com", "admin"))
    expect(page.locator("tr[data-ref]")).to_have_count(0)
    page.evaluate("window.notReloaded = true")
    body = whatsapp_message(wa_id="34611222333", name="Rosa Díaz", phone_id="1000000001",
                            message={"type": "text", "text": {"body": "Mi pedido no llegó"}})
    assert console.world.send.whatsapp(body).status_code == 200
    console.world.work()
    expect(page.locator("tr[data-ref]")).to_have_count(1, timeout=15_000)
    expect(page.locator("tr[data-ref]")).to_contain_text("Rosa Díaz")
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "board-live")


def test_a_reply_from_the_task_page_reaches_whatsapp(console, page):
    ref = new_task(console, assignee="ana")
    sign_in(page, console, add_person(console.db, "ana@example.com", "agent", agent="ana"))
    page.locator(f'tr[data-ref="{ref}"] a').click()
    expect(page.get_by_role("heading", name=re.compile(ref))).to_be_visible()
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("status")).to_be_visible()
    page.get_by_label("Reply to the customer (WhatsApp)").fill("Mañana le llega, Carmen.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("status")).to_be_visible()
    console.world.work()
    assert "Mañana le llega, Carmen." in console.world.customer_texts()
    page.reload()
    expect(page.locator(".conversation")).to_contain_text("Mañana le llega, Carmen.")
    expect(page.locator("table.audit")).to_contain_text("agent:ana")
    screenshot(page, "task")


def test_an_agent_is_refused_a_task_of_another_team(console, page):
    ref = new_task(console, team="sales")
    sign_in(page, console, add_person(console.db, "ana@example.com", "agent", agent="ana"))
    expect(page.locator(f'tr[data-ref="{ref}"]')).to_have_count(0)
    response = page.goto(f"{console.url}/console/tasks/{ref}")
    assert response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("not a task of your teams")
    screenshot(page, "refused")


def test_a_forged_post_is_refused(console, page):
    ref = new_task(console, assignee="ana")
    sign_in(page, console, add_person(console.db, "alba@example.com", "admin", agent="alba"))
    # Another site's page posting to the console with the person's cookie but no token.
    forged = page.request.post(f"{console.url}/console/tasks/{ref}/actions",
                               form={"verb": "close"}, max_redirects=0)
    assert forged.status == 403
    assert "did not come from the console" in forged.text()
    with console.db.transaction(readonly=True) as session:
        assert session.get(Task, int(ref[2:])).status == "assigned"


def history(api: Api) -> None:
    """Three tasks answered after 3 min, 10 min and 2 h, one unanswered, one rated 5."""
    with api.db.transaction() as session:
        for minutes in (3, 10, 120, None):
            task = make_task(session)
            task.created_at = utcnow() - timedelta(days=2)
            if minutes is not None:
                task.first_response_at = task.created_at + timedelta(minutes=minutes)
        task.rating = 5


def test_kpi_charts_draw_the_figures_and_the_csv_has_every_task(console, page):
    history(console)
    sign_in(page, console, add_person(console.db, "alba@example.com", "admin", agent="alba"))
    page.get_by_role("link", name="KPIs").click()
    page.locator("select[name=period]").select_option("7d")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#figure-first_response canvas")).to_be_visible()
    drawn = page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('canvas[data-figure]')].map(canvas =>
            [canvas.dataset.figure, Chart.getChart(canvas).data.datasets[0].data]))""")
    config = console.world.config
    with console.db.transaction(readonly=True) as session:
        kpis = compute_kpis(session, period=period_from("7d", now=utcnow(), tz=config.timezone),
                            filters=KpiFilters(), tz=config.timezone, now=utcnow(),
                            minutes_saved_per_task=config.minutes_saved_per_task)
    assert drawn["first_response"] == [bar.count for bar in kpis.first_response.buckets]
    assert drawn["first_response"][:3] == [1, 1, 0]  # < 5 min, 5–15 min, 15–30 min
    assert drawn["volume"] == [bar.count for bar in kpis.volume.hours]
    assert sum(drawn["volume"]) == 4
    assert drawn["csat"] == [0, 0, 0, 0, 1]
    screenshot(page, "kpis")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Export CSV")).click()
    text = download.value.path().read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4
    answered = [float(row["first_response_seconds"]) for row in rows
                if row["first_response_seconds"]]
    assert sorted(answered) == [180, 600, 7200]
    assert "Carmen" not in text  # no customer data in the export


def test_every_screen_renders_for_an_admin(console, page):
    ref = new_task(console, assignee="ana")
    sign_in(page, console, add_person(console.db, "alba@example.com", "admin", agent="alba"))
    for link, heading, name in (("Agents", "Agents", "agents"),
                                ("Operations", "Operations", "operations"),
                                ("Rules", "Rules", "rules"), ("People", "People", "people")):
        page.get_by_role("navigation").get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
        screenshot(page, name)
    page.get_by_role("navigation").get_by_role("link", name="Agents").click()
    expect(page.locator("main")).to_contain_text("Ana García")
    page.goto(f"{console.url}/console/tasks/{ref}")
    expect(page.locator("table.audit")).to_contain_text("assign")


def test_a_candidate_edited_on_the_rules_page_is_replayed_on_recorded_traffic(console, page):
    body = whatsapp_message(wa_id="34611222333", name="Rosa Díaz", phone_id="1000000001",
                            message={"type": "text", "text": {"body": "Mi pedido no llegó"}})
    assert console.world.send.whatsapp(body).status_code == 200
    console.world.work()  # decided under the running rules: no rule, normal priority
    sign_in(page, console, add_person(console.db, "alba@example.com", "admin", agent="alba"))
    page.get_by_role("navigation").get_by_role("link", name="Rules").click()
    edited = page.locator("textarea[name=candidate]")
    edited.fill(edited.input_value() + "  - name: orders\n    when: {keywords: [pedido]}\n"
                "    then: {priority: high, team: logistics}\n")
    page.get_by_role("button", name="Replay").click()
    expect(page.locator("#replay-replayed")).to_have_text("1")
    expect(page.locator("#replay-changed")).to_have_text("1")
    expect(page.locator("#replay-priority")).to_contain_text("normal → high: 1")
    expect(page.locator("table.replay-changed")).to_contain_text("Mi pedido no llegó")
    screenshot(page, "rules-replay")
