"""What the data layer refuses, as exceptions the API turns into answers."""


class NoFreeVm(Exception):
    """No running, unassigned VM is left."""


class ClaimRefused(Exception):
    """The email already holds a VM and the request did not present that claim's token."""


class RateLimited(Exception):
    """Too many attempts of one source address or one email in the current window."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnknownVm(LookupError):
    """No VM row has this hostname."""


class FleetFull(Exception):
    """A launch would take the fleet past its configured maximum."""


class DatabaseUnreachable(Exception):
    """PostgreSQL could not be reached, or the connection broke again on its one retry: the
    work was not done (a statement's transaction is rolled back with its connection) and
    may be asked for again once the database is back."""
