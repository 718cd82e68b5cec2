"""Errors the services raise. The split decides what a handler does with a message."""


class OtklikError(Exception):
    """Base of all Otklik errors."""


class PermanentError(OtklikError):
    """The input can never succeed (malformed, unknown, contradictory): quarantine it and acknowledge."""


class TransientError(OtklikError):
    """Worth retrying (a server busy, a timeout): let Pub/Sub redeliver."""


class InvalidTransition(PermanentError):
    pass


class ConfigError(OtklikError):
    """A configuration file or variable is wrong; the message names the file and the entry."""
