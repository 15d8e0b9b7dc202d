"""Shared pieces of the WhatsApp tests: settings, a running app over real HTTP, payloads."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from bot.app import create_app
from bot.core import tunables
from bot.core.bootstrap import build_services
from bot.core.services import Services
from bot.core.settings import Settings
from sandbox.inbound import whatsapp_message, whatsapp_signature

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
PHONE_ID = "1000000001"
CUSTOMER = "34600111222"

RULES = """
version: 1
timezone: Europe/Madrid
default_language: es
business_hours: {mon-sun: "00:00-24:00"}
sla:
  normal: {first_response: 4h, resolution: 24h, business_hours: false}
  high: {first_response: 1h, resolution: 8h, business_hours: false}
teams:
  support: {supervisor: ana}
  marketing: {supervisor: ana}
agents:
  - {id: ana, name: Ana García, teams: [support, marketing], skills: [campaigns],
     languages: [es, en], slack: U0ANA, capacity: 50}
rules:
  - name: thanks
    when: {any: [{regex: '^\\W*(gracias|ok|thanks)\\W*$'}, {type: reaction}]}
    then: {ignore: true}
  - name: campaign
    when: {any: [{campaign: {referral: true}}, {campaign: {button_payload: promo_}}]}
    then: {category: marketing, team: marketing, skills: [campaigns], tags: [campaign],
           title: "Lead — {contact.name}",
           reply: {es: "¡Gracias {contact.first_name}! Solicitud #{task.number}."}}
  - name: fallback
    then:
      team: support
      reply:
        es: "Hola {contact.first_name}, #{task.number}: respondemos en {sla.first_response}."
        en: "Hi {contact.first_name}, request #{task.number}: we reply within {sla.first_response}."
out_of_window_template: {name: opsbot_task_update, language: es}
reopen_within: 7d
"""


def make_settings(tmp_path: Path, database_url: str, redis_url: str, **extra) -> Settings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    values = dict(
        database_url=database_url,
        redis_url=redis_url,
        rules_path=rules,
        whatsapp_token="TEST-TOKEN",
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        whatsapp_phone_id=PHONE_ID,
    )
    return Settings(_env_file=None, **{**values, **extra})


@contextmanager
def running_app(services: Services) -> Iterator[str]:
    """The real app served by uvicorn on 127.0.0.1, port 0, in a thread; yields its URL.
    It stops as `opsbot serve` does: requests still open (a console's live stream) are cut
    after WEB_SHUTDOWN_GRACE."""
    app = create_app(services.settings, services=services)
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning",
        timeout_graceful_shutdown=tunables.WEB_SHUTDOWN_GRACE))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def live(settings: Settings) -> Iterator[tuple[Services, str]]:
    services = build_services(settings, migrate=False)
    try:
        with running_app(services) as url:
            yield services, url
    finally:
        services.close()


def post(
    url: str, body: dict | bytes, *, secret: str = APP_SECRET, signature: str | None = None
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    sig = signature if signature is not None else whatsapp_signature(raw, secret)
    if sig:
        headers["X-Hub-Signature-256"] = sig
    return httpx.post(url + "/webhooks/whatsapp", content=raw, headers=headers, timeout=10)


def message_body(
    message: dict,
    *,
    wamid: str,
    at: int | None = None,
    wa_id: str = CUSTOMER,
    name: str = "Lucía Pérez",
    user_id: str | None = None,
) -> dict:
    return whatsapp_message(
        wa_id=wa_id,
        name=name,
        message=message,
        phone_id=PHONE_ID,
        timestamp=at or int(time.time()),
        wamid=wamid,
        user_id=user_id,
    )


def status_body(wamid: str, status: str, *, errors: list | None = None) -> dict:
    item = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": CUSTOMER,
    }
    if errors:
        item["errors"] = errors
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID},
        "statuses": [item],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"value": value, "field": "messages"}]}],
    }


TEXT = {"type": "text", "text": {"body": "Hola, quiero saber dónde está mi pedido"}}
BUTTON = {"type": "button", "button": {"payload": "promo_black_friday", "text": "Me interesa"}}
INTERACTIVE = {
    "type": "interactive",
    "context": {"from": "15550001111", "id": "wamid.LIST"},
    "interactive": {
        "type": "button_reply",
        "button_reply": {"id": "promo_yes", "title": "Sí, quiero"},
    },
}
IMAGE = {
    "type": "image",
    "image": {
        "id": "1479537139650973",
        "mime_type": "image/jpeg",
        "sha256": "aGVsbG8=",
        "caption": "La caja llegó rota",
    },
}
LOCATION = {
    "type": "location",
    "location": {
        "latitude": 40.41678,
        "longitude": -3.70379,
        "name": "Oficina",
        "address": "Gran Vía 1, Madrid",
    },
}
REFERRAL = {
    "type": "text",
    "text": {"body": "Quiero más información"},
    "referral": {
        "source_url": "https://fb.me/ad",
        "source_id": "120210000000001",
        "source_type": "ad",
        "headline": "Rebajas de invierno",
        "body": "Hasta -50%",
        "media_type": "image",
        "image_url": "https://example.invalid/ad.jpg",
        "ctwa_clid": "ARAkLk",
    },
}


PAYLOADS = Path(__file__).parent / "whatsapp" / "payloads"


def recorded(name: str, *, at: int | None = None) -> dict:
    """A recorded webhook body (`tests/bot/whatsapp/payloads/<name>.json`, written by us from
    pywa's types and Meta's published examples), each message's timestamp set to `at`
    (default: now), so that it reads as just sent."""
    body = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    for entry in body["entry"]:
        for change in entry["changes"]:
            for message in change["value"].get("messages", []):
                message["timestamp"] = str(at or int(time.time()))
    return body


def reaction(to_wamid: str) -> dict:
    return {"type": "reaction", "reaction": {"message_id": to_wamid, "emoji": "👍"}}
