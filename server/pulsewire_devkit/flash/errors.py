"""The one error every flash step raises: a step cannot go on, and the message says what to do.

Its own module so that every step can raise it without importing another step.
"""


class FlashError(Exception):
    """A step cannot go on; the message says why and what to do."""
