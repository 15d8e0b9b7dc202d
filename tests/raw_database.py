"""What a database and its files keep, read beside opsbot rather than through it."""

import stat
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url


def stored_bytes(url: str) -> bytes:
    """Everything the database at `url` keeps, as bytes: the SQLite files (with the
    write-ahead log), or a PostgreSQL dump of the data."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        files = (Path(parsed.database), Path(f"{parsed.database}-wal"))
        return b"".join(path.read_bytes() for path in files if path.exists())
    dump = subprocess.run(
        ["pg_dump", "--data-only", "-h", parsed.host, "-p", str(parsed.port or 5432),
         "-U", parsed.username, parsed.database], capture_output=True, check=True)
    return dump.stdout


def mode(path: Path) -> int:
    """The permission bits of `path` (0o600…)."""
    return stat.S_IMODE(path.stat().st_mode)
