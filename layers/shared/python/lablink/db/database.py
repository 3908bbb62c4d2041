"""The data layer's facade: one connection, a repository per concern.

    db = Database.from_env(config.db, actor="api")
    db.assignments.claim(email, command)
    db.vms.set_status(hostname, "running")

Values always travel as parameters; the configured table name is a ``psycopg2.sql``
identifier. Methods follow one convention: ``get``/``list_*``/``count_*`` read, ``insert``/
``set_*``/``delete`` write, and a domain verb names the rest (``claim``, ``append``,
``record``, ``reserve_launch``).

A repository's module is imported when first used: each function pays on its cold start for
the concerns it touches (the authorizer only for ``vms``)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from lablink.config import DbConfig
from lablink.db.connection import Connection, database_url
from lablink.db.tables import VmTable

if TYPE_CHECKING:
    from lablink.db.access import AccessSettings
    from lablink.db.assignments import Assignments
    from lablink.db.history import History
    from lablink.db.operations import Operations
    from lablink.db.pool import Pool
    from lablink.db.rate_limits import RateLimits
    from lablink.db.startup import StartupTimes
    from lablink.db.vm_logs import VmLogs
    from lablink.db.vms import Vms


class Database:
    def __init__(self, dsn: str, db: DbConfig | None = None, actor: str = "lablink") -> None:
        self.connection = Connection(dsn, actor)
        self._dsn = dsn
        self.table = VmTable(db or DbConfig())

    @classmethod
    def from_env(cls, db: DbConfig | None = None, actor: str = "lablink") -> Database:
        return cls(database_url(), db, actor)

    def close(self) -> None:
        self.connection.close()

    @cached_property
    def vms(self) -> Vms:
        from lablink.db.vms import Vms

        return Vms(self.connection, self.table)

    @cached_property
    def assignments(self) -> Assignments:
        from lablink.db.assignments import Assignments

        return Assignments(self.connection, self.table)

    @cached_property
    def rate_limits(self) -> RateLimits:
        from lablink.db.rate_limits import RateLimits

        return RateLimits(self.connection)

    @cached_property
    def startup(self) -> StartupTimes:
        from lablink.db.startup import StartupTimes

        return StartupTimes(self.connection, self.table)

    @cached_property
    def logs(self) -> VmLogs:
        from lablink.db.vm_logs import VmLogs

        return VmLogs(self.connection, self.table)

    @cached_property
    def operations(self) -> Operations:
        from lablink.db.operations import Operations

        return Operations(self.connection, self.table)

    @cached_property
    def pool(self) -> Pool:
        from lablink.db.pool import Pool

        # The pool's lock is held on a connection of its own, opened for each exclusive run.
        return Pool(self.connection, self.table, lambda: Connection(self._dsn, f"{self.connection.actor}-pool-lock"))

    @cached_property
    def history(self) -> History:
        from lablink.db.history import History

        return History(self.connection, self.table)

    @cached_property
    def access(self) -> AccessSettings:
        from lablink.db.access import AccessSettings

        return AccessSettings(self.connection)
