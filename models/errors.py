"""The one exception type for bad user input (configs, vector files, models, arguments).

The command line turns it into a one-line message and exit status 2; library callers can
catch it like any ``ValueError``.
"""


class UserInputError(ValueError):
    """Input from the user that aimcflow cannot accept; the message says what and why."""
