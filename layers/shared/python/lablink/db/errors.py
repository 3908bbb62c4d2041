"""What the data layer refuses, as exceptions the API turns into answers."""


class NoFreeVm(Exception):
    """No running, unassigned VM is left."""


class UnknownVm(LookupError):
    """No VM row has this hostname."""


class FleetFull(Exception):
    """A launch would take the fleet past its configured maximum."""
