"""Error base of the adapter layer: driver errors are translated into these (``raise X from e``).

They subclass the domain's backend errors so callers can handle them without importing adapters.
"""

from domain.errors import BackendError, BackendUnavailable


class AdapterError(BackendError):
    """A backend failed in a way the caller may retry or report."""


class AdapterUnavailable(AdapterError, BackendUnavailable):
    """The backend cannot be reached."""
