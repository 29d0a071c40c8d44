"""The one exception for a user's mistake (a bad option, setting, path or id).

Its message is one line that names the value and says what is allowed; the CLI prints it as
`crmflow: error: <message>` and exits 2, without a traceback (docs/operations.md, "Errors").
Anything else that escapes is a bug or an outage and keeps its traceback.
"""


class CrmflowUserError(ValueError):
    """A mistake the user can fix by changing what they typed or configured."""
