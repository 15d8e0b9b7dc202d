"""`opsbot keys generate|rotate`: the keys that seal customer data (README: Security and
compliance)."""

from typing import Annotated

import typer

from bot.cli.support import JsonFlag, load_settings, open_existing_database, print_json
from store import keys, rotation

keys_app = typer.Typer(help="The keys that seal customer data at rest.")
ROTATE_BATCH = 500  # rows per transaction: short transactions, no downtime


@keys_app.command("generate")
def keys_generate(as_json: JsonFlag = False) -> None:
    """Print a new master key entry and a new index key (nothing is stored)."""
    entry, index = keys.new_master_entry(), keys.new_key()
    if as_json:
        print_json({"data_key": entry, "index_key": index})
        return
    typer.echo(f"OPSBOT_DATA_KEYS={entry}\nOPSBOT_INDEX_KEY={index}\n")
    typer.echo("A new installation uses both lines. To rotate, put the new entry first in "
               "OPSBOT_DATA_KEYS, keep the old ones after it, restart, and run "
               "`opsbot keys rotate`. The index key is never rotated.")


@keys_app.command("rotate")
def keys_rotate(
    batch: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = ROTATE_BATCH,
    as_json: JsonFlag = False,
) -> None:
    """Re-wrap every data key with the first master key and re-seal the values sealed with an
    older one, in small batches while opsbot runs."""
    database = open_existing_database(load_settings())
    counts = {"contacts_keyed": 0, "data_keys_rewrapped": 0, "values_resealed": 0}
    try:
        for name, step in (
            ("contacts_keyed", lambda s: rotation.key_legacy_contacts(s, limit=batch)),
            ("data_keys_rewrapped", lambda s: rotation.rewrap_data_keys(s, limit=batch)),
            *(("values_resealed", lambda s, t=table: rotation.reseal_values(
                s, table=t, limit=batch)) for table in rotation.SEALED),
        ):
            while True:
                with database.transaction() as session:
                    done = step(session)
                counts[name] += done
                if done < batch:
                    break
        with database.transaction(readonly=True) as session:
            counts["audit_values_on_older_keys"] = rotation.pending_audit_values(session)
    finally:
        database.dispose()
    counts["master_key"] = keys.current().primary
    if as_json:
        print_json(counts)
        return
    typer.echo(f"master key {counts['master_key']}: {counts['data_keys_rewrapped']} data keys "
               f"re-wrapped, {counts['values_resealed']} values sealed again, "
               f"{counts['contacts_keyed']} contacts from before encryption given their key")
    if counts["audit_values_on_older_keys"]:
        typer.echo(f"{counts['audit_values_on_older_keys']} audit events keep values sealed "
                   "with an older master key (the audit is never re-sealed): keep it listed")
