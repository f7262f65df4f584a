"""The root of MedShare's domain errors.

Every error the library raises on purpose (a refusal by the contract, a bad
input, a record that cannot be read, a deployment that is missing, an
unreachable node) derives from :class:`MedShareError`, and carries a message
that says what went wrong and what to do. Only the edges (the ``medshare``
commands and the Ape scripts, through ``offchain.cli.errors.reported``) turn
it into one line and an exit status.
"""


class MedShareError(Exception):
    """Base class of every error the library raises for a caller to show."""


class InvalidInput(MedShareError, ValueError):
    """A value given by a user (an address, an expiry, a network, a CSV row) is not acceptable."""


class ChainUnavailable(MedShareError):
    """No node answers where one was named, or the chosen network cannot be reached."""
