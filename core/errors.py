"""Error types. A ``BevDeployError`` is something the user can fix: the CLI prints its
message as one line and exits with code 2. Anything else is a bug and keeps its traceback."""


class BevDeployError(Exception):
    """A problem with the user's input or environment. The message says what is wrong and
    what to do, in one line."""


class BackendUnavailable(BevDeployError):
    """A backend (or an optional package it needs) cannot be imported here."""
