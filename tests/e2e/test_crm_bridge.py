"""The reference CRM bridge (examples/crm_bridge.py) against a fake CRM, with opsbot running as
web and worker processes: opsbot's signed webhooks become deals in the CRM, a status a CRM user
sets reaches opsbot through the API once, and a forged webhook is refused."""

import importlib.util
import json
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from sandbox.graph import FakeGraph
from sandbox.inbound import whatsapp_message
from sandbox.slack import FakeSlack
from sandbox.stack import (
    PHONE_ID,
    free_port,
    opsbot_command,
    running,
    sandbox_environment,
    sandbox_sender,
)
from sandbox.telegram import FakeTelegram
from store.db import Database
from store.models import Task
from tests.e2e.fake_crm import FakeCRM

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "demo-rules.yaml"
CUSTOMER = "34611000099"


def load_bridge_module():
    spec = importlib.util.spec_from_file_location("crm_bridge", ROOT / "examples/crm_bridge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def opsbot_json(env: dict[str, str], cwd: Path, *args: str) -> dict:
    done = subprocess.run(opsbot_command(*args, "--json"), env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def write(sender, text: str, wamid: str) -> None:
    body = whatsapp_message(wa_id=CUSTOMER, name="Rita Bridge", phone_id=PHONE_ID,
                            message={"type": "text", "text": {"body": text}}, wamid=wamid)
    assert sender.whatsapp(body).status_code == 200


def test_the_bridge_mirrors_tasks_and_pushes_crm_status_back(database_url, redis_url, tmp_path):
    bridge_module = load_bridge_module()
    with FakeGraph() as graph, FakeSlack() as slack, FakeTelegram() as telegram, \
            FakeCRM() as crm:
        port, bridge_port = free_port(), free_port()
        env = sandbox_environment(graph, slack, telegram, DATABASE_URL=database_url,
                                  REDIS_URL=redis_url, RULES_PATH=str(RULES))
        commands = [opsbot_command("serve", "--port", str(port)), opsbot_command("worker")]
        with running(commands, env=env, cwd=tmp_path,
                     ready_url=f"http://127.0.0.1:{port}/readyz"):
            key = opsbot_json(env, tmp_path, "apikeys", "create", "crm-bridge", "--scopes",
                              "contacts:read,contacts:write,tasks:read")["key"]
            endpoint = opsbot_json(env, tmp_path, "webhooks", "add",
                                   f"http://127.0.0.1:{bridge_port}/opsbot", "--events",
                                   "task.created,task.assigned,task.status_changed,task.closed")
            client = httpx.Client(timeout=10)
            bridge = bridge_module.Bridge(
                opsbot_url=f"http://127.0.0.1:{port}", api_key=key, secret=endpoint["secret"],
                crm=bridge_module.CrmClient(crm.url, client), client=client)
            server = bridge_module.serve(bridge, "127.0.0.1", bridge_port)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                sender = sandbox_sender(port)
                write(sender, "Hi, my coffee machine is broken and won't turn on", "wamid.BR1")
                crm.wait_for(lambda _: crm.deal_history.get("T-1", [])[-1:] == ["assigned"],
                             timeout=30)
                deal = crm.deals["T-1"]
                assert (deal["customer"], deal["priority"]) == (CUSTOMER, "high")  # a fault
                assert deal["owner"]

                crm.set_status(CUSTOMER, "vip", crm_id=777)  # a CRM user's change
                assert bridge.sync_changes() == 1
                assert bridge.sync_changes() == 0  # applied once
                api = httpx.get(f"http://127.0.0.1:{port}/api/v1/contacts/{CUSTOMER}",
                                headers={"Authorization": f"Bearer {key}"}).json()
                assert (api["crm_status"], api["external_ids"]) == ("vip", {"crm": "777"})

                forged = httpx.post(f"http://127.0.0.1:{bridge_port}/opsbot", json={"x": 1},
                                    headers={"webhook-id": "msg_x", "webhook-timestamp": "1",
                                             "webhook-signature": "v1,Zm9yZ2Vk"})
                assert forged.status_code == 401  # not signed with the endpoint's secret
            finally:
                server.shutdown()
                client.close()
    database = Database(database_url)
    with database.transaction(readonly=True) as session:
        [task] = session.scalars(select(Task)).all()
        assert task.contact.crm_status == "vip"
    database.dispose()
