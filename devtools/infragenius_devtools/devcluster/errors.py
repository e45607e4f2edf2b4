"""Errors the local cluster reports to a person, as one clear sentence."""


class DevClusterError(Exception):
    """A problem the user can act on; the message says what is wrong and what to do."""
