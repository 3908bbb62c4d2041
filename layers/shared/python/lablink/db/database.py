"""The data layer's facade: one connection, a repository per concern.

    db = Database.from_env(config.db, actor="api")
    db.assignments.claim(email, command)
    db.vms.set_status(hostname, "running")

Values always travel as parameters; the configured table name is a ``psycopg2.sql``
identifier. Methods follow one convention: ``get``/``list_*``/``count_*`` read, ``insert``/
``set_*``/``delete`` write, and a domain verb names the rest (``claim``, ``append``,
``record``, ``reserve_launch``)."""

from __future__ import annotations

from lablink.config import DbConfig
from lablink.db.assignments import Assignments
from lablink.db.connection import Connection, database_url
from lablink.db.operations import Operations
from lablink.db.startup import StartupTimes
from lablink.db.tables import VmTable
from lablink.db.vm_logs import VmLogs
from lablink.db.vms import Vms


class Database:
    def __init__(self, dsn: str, db: DbConfig | None = None, actor: str = "lablink") -> None:
        self.connection = Connection(dsn, actor)
        self.table = VmTable(db or DbConfig())
        self.vms = Vms(self.connection, self.table)
        self.assignments = Assignments(self.connection, self.table)
        self.startup = StartupTimes(self.connection, self.table)
        self.logs = VmLogs(self.connection, self.table)
        self.operations = Operations(self.connection, self.table)

    @classmethod
    def from_env(cls, db: DbConfig | None = None, actor: str = "lablink") -> Database:
        return cls(database_url(), db, actor)

    def close(self) -> None:
        self.connection.close()
