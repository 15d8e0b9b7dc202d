"""Outside the 24 h window the template goes in the language of the text it carries
(issue 15 item 3: it always went in `es`)."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.usecases.delivery import send_customer_message
from bot.worker.retries import outlets_of, process_event
from store.models import Contact, InboundEvent, OutboxMessage
from store.types import utcnow
from tests.bot.whatsapp_kit import RULES, live, make_settings, message_body, post
from tests.fakes import FakeGraph

ONE_LANGUAGE = "out_of_window_template: {name: opsbot_task_update, language: es}"


@pytest.fixture
def graph():
    with FakeGraph(token="TEST-TOKEN") as fake:
        yield fake


def sent_template(tmp_path, database_url, redis_url, graph, *, template: str, text: str) -> dict:
    """The template sent for the ack of a customer who wrote `text` 25 h ago."""
    rules = tmp_path / "languages.yaml"
    rules.write_text(RULES.replace(ONE_LANGUAGE, f"out_of_window_template: {template}"),
                     encoding="utf-8")
    settings = make_settings(tmp_path, database_url, redis_url, rules_path=rules,
                             whatsapp_api_base_url=graph.url)
    with live(settings) as (services, url):
        body = message_body({"type": "text", "text": {"body": text}}, wamid="wamid.IN")
        assert post(url, body).status_code == 200
        with services.db.transaction() as session:
            event_id = session.scalars(select(InboundEvent.id)).one()
        process_event(services, event_id)
        with services.db.transaction() as session:
            ack = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "ack")).one()
            session.scalars(select(Contact)).one().last_inbound_at = (
                utcnow() - timedelta(hours=25))
        send_customer_message(services.db, outlets_of(services), ack)
    [sent] = graph.sent_messages()
    assert sent["type"] == "template"
    return sent["template"]


@pytest.mark.parametrize(("text", "language"), [
    ("Hi, my order arrived broken, can you help?", "en"),
    ("Hola, mi pedido ha llegado roto", "es"),
    ("Bonjour, ma commande est arrivée cassée", "es"),  # no French reply: default_language
])
def test_the_template_goes_in_the_language_of_its_text(tmp_path, database_url, redis_url,
                                                       graph, text, language):
    template = sent_template(tmp_path, database_url, redis_url, graph, text=text,
                             template="{name: opsbot_task_update, languages: [es, en]}")
    assert (template["name"], template["language"]["code"]) == ("opsbot_task_update", language)
    body = template["components"][0]["parameters"][0]["text"]
    assert body.startswith("Hi " if language == "en" else "Hola ")


def test_a_one_language_template_is_still_sent_in_that_language(tmp_path, database_url,
                                                                 redis_url, graph):
    template = sent_template(tmp_path, database_url, redis_url, graph,
                             text="Hi, my order arrived broken, can you help?",
                             template="{name: opsbot_task_update, language: es}")
    assert template["language"]["code"] == "es"
