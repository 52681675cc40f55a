"""Errors meant for people.

Every problem caused by the user's input (a wrong name, shape, file or option) is raised as a
:class:`StitchkitError` with one sentence that says what was wrong and what would be right. The CLI
prints it on one line and exits with code 2; anything else is a bug and keeps its traceback.
"""


class StitchkitError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class UnknownNameError(StitchkitError, KeyError):
    """A registry lookup failed; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: str, known) -> UnknownNameError:
    """Build the standard 'unknown X' error listing every valid choice."""
    known = sorted(known)
    return UnknownNameError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(known)}")
