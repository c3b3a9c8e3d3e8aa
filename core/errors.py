"""Errors whose message is meant for the user, shown as-is by the CLIs and the app."""


class BookwormError(Exception):
    """An expected failure with a message that says what to do next."""


class ConfigError(BookwormError):
    """A setting is unknown or has the wrong type."""


class ModelError(BookwormError):
    """A model could not be resolved or loaded."""


class StoreError(BookwormError):
    """The index is missing, stale, or was built with other settings."""
