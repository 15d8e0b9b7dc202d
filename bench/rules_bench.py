"""Messages per second through `rules.evaluate` with 500 rules, on one core.

Run: .venv/bin/python bench/rules_bench.py [--rules 500] [--messages 50000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from rules import ContactFacts, HistoryFacts, MessageFacts, MessageType, evaluate, parse_rules

HEADER = """\
version: 1
timezone: Europe/Madrid
business_hours: {mon-fri: "09:00-18:00", holidays: [2026-12-25]}
sla:
  normal: {first_response: 4h, resolution: 24h}
teams:
  t0: {supervisor: a0}
  t1: {supervisor: a1}
agents:
  - {id: a0, name: A0, teams: [t0], skills: [s0]}
  - {id: a1, name: A1, teams: [t1], skills: [s1]}
rules:
"""

MESSAGES = [
    "hola quiero saber si tenéis producto0042 disponible",
    "my order item0317 arrived broken, please help",
    "cambiar la dirección de envío del pedido item0499",
    "gracias!",
    "¿a qué hora abrís mañana?",
    "necesito una factura para la compra de ayer",
    "producto0123 y producto0124 juntos con descuento",
    "the parcel never arrived and nobody answers the phone",
]


def build_rules(count: int) -> str:
    """Return a rules file with `count` rules: mostly keyword rules, some mixed conditions."""
    lines = [HEADER]
    for i in range(count - 1):
        team = f"t{i % 2}"
        when = f"{{keywords: [producto{i:04d}, item{i:04d}, \"frase {i} especial\"]}}"
        if i % 10 == 0:
            when = (f"{{all: [{{keywords: {{any: [pedido{i}, order{i}], none: [test]}}}}, "
                    f"{{type: [text, image]}}], not: {{customer_status: spam}}}}")
        if i % 50 == 0:
            when = f"{{regex: 'ref-{i:04d}-\\\\d+', business_hours: inside}}"
        lines.append(f"  - name: rule-{i}\n    when: {when}\n"
                     f"    then: {{category: sales, team: {team}, tags: [r{i}], "
                     f"title: \"Regla {i} — {{contact.name}}\"}}\n")
    lines.append("  - name: fallback\n    then: {category: support}\n")
    return "".join(lines)


def measure(count: int, messages: int) -> float:
    """Return messages per second evaluated against `count` rules."""
    config = parse_rules(build_rules(count), "bench.yaml")
    facts = [MessageFacts(text, MessageType.text) for text in MESSAGES]
    contact, history = ContactFacts("Ana Pérez", status="customer"), HistoryFacts()
    now = datetime(2026, 3, 6, 10, 0, tzinfo=UTC)
    started = time.perf_counter()
    for n in range(messages):
        evaluate(config, message=facts[n % len(facts)], contact=contact, history=history, now=now)
    return messages / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    rate = measure(args.rules, args.messages)
    print(f"rules_bench: {args.rules} rules, {args.messages} messages: {rate:,.0f} messages/s")


if __name__ == "__main__":
    main()
