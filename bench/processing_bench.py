"""Processing cost per customer message: stored webhooks applied in batches, on SQLite.

Inserts N inbound events shaped like real webhooks, then applies them as a drain does
(`bot.usecases.messages.apply_pending`, batches of 25 in ONE transaction). Two scenarios: (a) N
new customers (new task, routed, "assigned" queued) and (b) the same customers writing
again (the follow-up threads into their open task). Prints
ms/message for the whole loop (timed without listeners) and for `apply_message` alone, then
SQL statements and ORM flushes per message (counted in a separate run). No Redis: a
session, the rules and the messages.

    python bench/processing_bench.py [--messages 1000] [--batch 25] [--rounds 3]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bot.usecases.messages  # noqa: E402
from bench.e2e_bench import RULES  # noqa: E402
from bot.core.bootstrap import configure_keys  # noqa: E402
from bot.core.settings import Settings  # noqa: E402
from bot.usecases.messages import apply_message, apply_pending  # noqa: E402
from bot.webhooks.whatsapp import event_rows  # noqa: E402
from rules import RulesHolder, prepare_language_detection  # noqa: E402
from sandbox.inbound import whatsapp_message  # noqa: E402
from sandbox.stack import PHONE_ID  # noqa: E402
from store.db import Database, upgrade_database  # noqa: E402
from store.inbound import insert_events  # noqa: E402
from store.types import utcnow  # noqa: E402


class Counters:
    """SQL statements and ORM flushes, in the whole loop and inside `apply_message`; None
    when not counting (listeners cost time of their own)."""

    def __init__(self) -> None:
        self.statements = self.flushes = self.apply_statements = self.apply_flushes = 0
        self.applying = False
        self.apply_seconds = 0.0

    def on_statement(self, *_args) -> None:
        self.statements += 1
        self.apply_statements += self.applying

    def on_flush(self, *_args) -> None:
        self.flushes += 1
        self.apply_flushes += self.applying


def store_messages(db: Database, count: int, text: str, start: int) -> None:
    rows = []
    for i in range(count):
        body = whatsapp_message(wa_id=f"34{i:09d}", name=f"Cliente {i}", phone_id=PHONE_ID,
                                message={"type": "text", "text": {"body": text}},
                                timestamp=start + i)
        rows += event_rows(json.dumps(body).encode())
    with db.transaction() as session:
        insert_events(session, rows=rows)


def drain(db: Database, services, batch: int, counters: Counters, *, count: bool) -> dict:
    """Applies every pending event as a drain does (`apply_pending`, `batch` per
    transaction); returns the outcome counts."""
    outcomes: dict[str, int] = {}
    while True:
        with db.transaction() as session:
            if count:
                event.listen(session, "after_flush", counters.on_flush)
            applied = apply_pending(session, config=services.rules.current, limit=batch,
                                    now=utcnow())
        for outcome in applied.outcomes.values():
            outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
        if not applied.taken:
            return outcomes


def timed(apply, counters: Counters):
    """`apply_message`, counting its time and statements in `counters`."""

    def apply_message(*args, **kwargs):
        counters.applying = True
        started = time.perf_counter()
        try:
            return apply(*args, **kwargs)
        finally:
            counters.apply_seconds += time.perf_counter() - started
            counters.applying = False

    return apply_message


def run_scenario(db: Database, services, *, count: int, batch: int, text: str, start: int,
                 counting: bool) -> dict:
    store_messages(db, count, text, start)
    counters = Counters()
    if counting:
        event.listen(db.engine, "before_cursor_execute", counters.on_statement)
    started = time.perf_counter()
    bot.usecases.messages.apply_message = timed(apply_message, counters)
    try:
        outcomes = drain(db, services, batch, counters, count=counting)
    finally:
        bot.usecases.messages.apply_message = apply_message
    elapsed = time.perf_counter() - started
    if counting:
        event.remove(db.engine, "before_cursor_execute", counters.on_statement)
    return {"ms": 1000 * elapsed / count, "apply_ms": 1000 * counters.apply_seconds / count,
            "statements": counters.statements / count,
            "apply_statements": counters.apply_statements / count,
            "flushes": counters.flushes / count, "apply_flushes": counters.apply_flushes / count,
            "outcomes": outcomes}


def run_round(count: int, batch: int, *, counting: bool = False) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="opsbot-processing-") as tmp:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(RULES)
        services = SimpleNamespace(rules=RulesHolder(rules))  # all that processing reads
        prepare_language_detection(services.rules.current)  # as a worker does at start
        url = f"sqlite:///{tmp}/opsbot.db"
        configure_keys(Settings(database_url=url))  # customer data is sealed, as in opsbot
        upgrade_database(url)
        db = Database(url)
        start = int(time.time()) - 2 * count - 60
        scenario = {"count": count, "batch": batch, "counting": counting}
        results = {
            "new customers": run_scenario(db, services, text="¿Tenéis stock?", start=start,
                                          **scenario),
            "repeat customers": run_scenario(db, services, text="Es el pedido 4411",
                                             start=start + count, **scenario),
        }
        db.dispose()
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"processing_bench: SQLite, {args.messages} messages per scenario, batches of "
          f"{args.batch} (one transaction each, as a drain), median of {args.rounds}")
    counted = run_round(min(args.messages, 200), args.batch, counting=True)
    rounds = [run_round(args.messages, args.batch) for _ in range(args.rounds)]
    for name, counts in counted.items():
        ms = statistics.median(r[name]["ms"] for r in rounds)
        apply_ms = statistics.median(r[name]["apply_ms"] for r in rounds)
        print(f"{name:>16}: {ms:.2f} ms/message ({apply_ms:.2f} in apply_message) | "
              f"SQL {counts['statements']:.1f}/message ({counts['apply_statements']:.1f} in "
              f"apply_message) | ORM flushes {counts['flushes']:.1f}/message "
              f"({counts['apply_flushes']:.1f} in apply_message) | {rounds[-1][name]['outcomes']}")


if __name__ == "__main__":
    main()
