"""`opsbot contacts export --out` and what `erase` says of a contact from before encryption."""

import json

from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli import app
from store.contacts import upsert_contact
from store.keys import blind_index
from store.types import utcnow
from tests.raw_database import mode

runner = CliRunner()


def test_an_export_file_is_owner_only_even_when_it_was_there(db, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db.url)
    with db.transaction() as session:
        upsert_contact(session, wa_id="34600777", user_id=None, name="Nuria", now=utcnow())
    out = tmp_path / "export.json"
    out.write_text("old")
    out.chmod(0o644)
    result = runner.invoke(app, ["contacts", "export", "34600777", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o600 and json.loads(out.read_text())["contact"]["name"] == "Nuria"


def test_erasing_a_contact_from_before_encryption_says_what_may_remain(db, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db.url)
    with db.transaction() as session:
        session.execute(text(
            "INSERT INTO contacts (wa_id, wa_id_index, name, crm_status, tags, external_ids, "
            "first_seen_at, last_seen_at) VALUES ('34600888', :index, 'Old', 'lead', '[]', "
            "'{}', :t, :t)"), {"index": blind_index("34600888"), "t": utcnow()})
    result = runner.invoke(app, ["contacts", "erase", "34600888", "--reason", "asked"])
    assert result.exit_code == 0, result.output
    assert "no data key to destroy" in result.output and "keys rotate" in result.output
