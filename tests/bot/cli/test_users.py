"""`opsbot users add|list|disable|reset-mfa` against a real database."""

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app
from store.db import Database
from store.types import utcnow
from store.users import HashCost, SignInOutcome, check_password, get_user
from tests.notifiers.helpers import RULES

runner = CliRunner()
PASSWORD = "correct horse battery"


@pytest.fixture
def database(monkeypatch, database_url, tmp_path):
    """The CLI pointed at an empty database and the test rules; Argon2 at its cheapest."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("RULES_PATH", str(rules))
    monkeypatch.setattr("store.users.HASH_COST", HashCost(time_cost=1, memory_cost=8,
                                                          parallelism=1))
    database = Database(database_url)
    yield database
    database.dispose()


def _users(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["users", *args], input=stdin)


def _signs_in(database, email, password) -> bool:
    with database.transaction() as session:
        return check_password(session, email=email, password=password, now=utcnow(),
                              ip=None).outcome == SignInOutcome.OK


def test_add_with_a_generated_password_prints_it_once(database):
    result = _users("add", "Marta@Example.com", "--role", "supervisor", "--agent", "marta",
                    "--teams", "logistics", "--json")
    assert result.exit_code == 0, result.output
    added = json.loads(result.output)
    assert (added["email"], added["role"], added["agent"], added["teams"]) == (
        "marta@example.com", "supervisor", "marta", ["logistics"])
    assert added["mfa_required"] is True and added["totp_uri"].startswith("otpauth://totp/")
    assert len(added["recovery_codes"]) == 10
    assert _signs_in(database, "marta@example.com", added["password"])
    with database.transaction(readonly=True) as session:
        assert get_user(session, email="marta@example.com").agent_id == "marta"


def test_add_reads_a_piped_password(database):
    result = _users("add", "ana@example.com", "--role", "agent", "--agent", "ana", "--json",
                    stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    added = json.loads(result.output)
    assert added["password"] is None and added["mfa_required"] is False
    assert added["totp_uri"]
    assert _signs_in(database, "ana@example.com", PASSWORD)


def test_add_in_words(database):
    result = _users("add", "alba@example.com", "--role", "admin")
    assert result.exit_code == 0, result.output
    assert "added alba@example.com (admin)" in result.output
    assert "password: " in result.output
    assert "TOTP enrolment (required): otpauth://" in result.output
    assert result.output.count("-") >= 10  # the recovery codes, xxxxx-xxxxx


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["nobody", "--role", "admin"], None, "not an email address"),
    (["a@example.com", "--role", "root"], None, "unknown role 'root'"),
    (["a@example.com", "--role", "agent"], None, "an agent must be one of rules.yaml's"),
    (["a@example.com", "--role", "agent", "--agent", "nobody"], None, "no agent 'nobody'"),
    (["a@example.com", "--role", "admin", "--teams", "sales,moon"], None,
     "unknown team(s) moon"),
    (["a@example.com", "--role", "admin"], "short\n", "at least 12 characters"),
])
def test_add_refuses_wrong_input_in_one_line(database, args, stdin, message):
    result = _users("add", *args, stdin=stdin)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("\n") == 1


def test_a_taken_email_is_refused(database):
    assert _users("add", "ana@example.com", "--role", "admin").exit_code == 0
    again = _users("add", "ANA@example.com", "--role", "admin")
    assert again.exit_code == 2 and "a user ana@example.com already" in again.output


def test_list_disable_and_reset_mfa(database):
    assert "no users" in _users("list").output
    first = json.loads(_users("add", "ana@example.com", "--role", "admin", "--json").output)
    listed = json.loads(_users("list", "--json").output)
    assert [(u["email"], u["mfa"], u["locked"], u["disabled_at"]) for u in listed] == [
        ("ana@example.com", "pending", False, None)]
    assert "ana@example.com" in _users("list").output

    reset = _users("reset-mfa", "ana@example.com", "--json")
    assert reset.exit_code == 0, reset.output
    codes = json.loads(reset.output)
    assert codes["totp_uri"] != first["totp_uri"]
    assert set(codes["recovery_codes"]).isdisjoint(first["recovery_codes"])
    assert "new second factor for ana@example.com" in _users("reset-mfa", "ana@example.com").output

    disabled = _users("disable", "ana@example.com")
    assert disabled.exit_code == 0 and "disabled ana@example.com" in disabled.output
    assert not _signs_in(database, "ana@example.com", first["password"])
    assert json.loads(_users("list", "--json").output)[0]["disabled_at"]
    assert "disabled" in _users("list").output


def test_an_unknown_person_is_one_line(database):
    for args in (["disable", "nobody@example.com"], ["reset-mfa", "nobody@example.com"]):
        result = _users(*args)
        assert result.exit_code == 1
        assert "no user nobody@example.com" in result.output and "Traceback" not in result.output


def test_audit_names_the_cli_and_who_ran_it(database):
    _users("add", "ana@example.com", "--role", "admin")
    _users("disable", "ana@example.com")
    with database.engine.connect() as connection:
        actors = connection.exec_driver_sql(
            "SELECT actor FROM task_events WHERE action IN ('user_added', 'user_disabled')"
        ).scalars().all()
    assert len(actors) == 2 and all(actor.startswith("cli:") for actor in actors)
