"""The pywa adapter against the fake Graph API: texts, templates, media and what errors mean."""

import pytest

from bot.whatsapp.sending import WhatsAppSender
from notifiers.errors import PermanentDeliveryError, TransientDeliveryError
from rules import TemplateRef
from sandbox.graph import FakeGraph
from sandbox.stack import free_port

TOKEN = "TEST-TOKEN"


@pytest.fixture
def graph():
    with FakeGraph(token=TOKEN) as fake:
        yield fake


def sender(graph: FakeGraph) -> WhatsAppSender:
    return WhatsAppSender(phone_id="1000000001", token=TOKEN, api_base_url=graph.url)


def test_a_text_is_sent_and_its_wamid_returned(graph):
    wamid = sender(graph).send_text(to="34600111222", text="Hola")
    [sent] = graph.sent_messages()
    assert (sent["type"], sent["to"], sent["text"]["body"]) == ("text", "34600111222", "Hola")
    assert wamid.startswith("wamid.")


def test_a_template_carries_the_text_as_its_body_parameter(graph):
    template = TemplateRef(name="opsbot_task_update", language="es")
    sender(graph).send_template(to="34600111222", template=template, text="Tu pedido sale hoy")
    [sent] = graph.sent_messages()
    assert (sent["template"]["name"], sent["template"]["language"]["code"]) == (
        "opsbot_task_update", "es")
    [component] = sent["template"]["components"]
    assert component["parameters"] == [{"type": "text", "text": "Tu pedido sale hoy"}]


def test_a_customer_image_can_be_downloaded(graph):
    graph.add_media("1479537139650973", b"\xff\xd8jpeg bytes", "image/jpeg")
    content, mime = sender(graph).download_media("1479537139650973")
    assert (content, mime) == (b"\xff\xd8jpeg bytes", "image/jpeg")


@pytest.mark.parametrize(("status", "error"), [
    (500, TransientDeliveryError), (503, TransientDeliveryError), (429, TransientDeliveryError),
    (400, PermanentDeliveryError), (401, PermanentDeliveryError),
])
def test_graph_errors_say_whether_a_retry_can_help(graph, status, error):
    graph.fail_next(status=status, match="messages")
    with pytest.raises(error, match="Graph API error"):
        sender(graph).send_text(to="34600111222", text="Hola")


def test_an_unreachable_graph_api_is_worth_a_retry():
    down = WhatsAppSender(phone_id="1", token=TOKEN, api_base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        down.send_text(to="34600111222", text="Hola")


def test_the_token_stays_out_of_logs():
    assert TOKEN not in repr(WhatsAppSender(phone_id="1", token=TOKEN))
