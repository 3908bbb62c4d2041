"""What the data layer refuses, as exceptions the API turns into answers."""


class NoFreeVm(Exception):
    """No running, unassigned VM is left."""


class UnknownVm(LookupError):
    """No VM row has this hostname."""


class FleetFull(Exception):
    """A launch would take the fleet past its configured maximum."""


class DatabaseUnreachable(Exception):
    """PostgreSQL could not be reached, or the connection broke again on its one retry: the
    work was not done (a statement's transaction is rolled back with its connection) and
    may be asked for again once the database is back."""
