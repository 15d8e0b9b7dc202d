"""What every `opsbot` command shares: reading the settings and printing JSON."""

import json
from typing import Annotated, Any

import typer

from bot.core.settings import ConfigError, Settings

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def load_settings() -> Settings:
    """The settings from the environment and .env; exits 2 with the reason when invalid."""
    try:
        return Settings()
    except ConfigError as exc:
        typer.echo(f"opsbot: {exc}", err=True)
        raise typer.Exit(2) from exc


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))
