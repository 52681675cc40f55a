"""Errors meant for people.

Every problem caused by the user's input (a wrong name, shape, file or option) is raised as a
:class:`StitchkitError` with one sentence that says what was wrong and what would be right. The CLI
prints it on one line and exits with code 2; anything else is a bug and keeps its traceback.
"""

import re

#: how torch's DataLoader re-raises an exception from a worker process: the type called with this text
_WORKER_RERAISE = re.compile(r"Caught (\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


class StitchkitError(Exception):
    """A problem with the user's input or environment, explained in the message.

    Raised in a DataLoader worker (an image file that cannot be decoded), it reaches the main process
    re-made from the worker's whole traceback; the message is then the original one sentence again.
    """

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_from_worker(args[0]),)
        super().__init__(*args)


def _from_worker(message: str) -> str:
    """The original message of an error re-raised from a DataLoader worker; any other message unchanged."""
    match = _WORKER_RERAISE.match(message)
    if not match:
        return message
    name = re.escape(match.group(1))
    last = list(re.finditer(rf"^(?:[\w.]+\.)?{name}: ", message, flags=re.MULTILINE))
    return message[last[-1].end() :].strip() if last else message


class UnknownNameError(StitchkitError, KeyError):
    """A registry lookup failed; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: str, known) -> UnknownNameError:
    """Build the standard 'unknown X' error listing every valid choice."""
    known = sorted(known)
    return UnknownNameError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(known)}")


class StitchkitWarning(UserWarning):
    """Something a result depends on that the user should know: a count clamped to what the data has,
    a network evaluated on a dataset other than its own, a class without images. The CLI prints it as
    one line ``stitchkit: warning: …``; in Python it is an ordinary warning (``warnings`` filters apply)."""


def warn(message: str) -> None:
    """Issue a :class:`StitchkitWarning` (one sentence, like an error's message)."""
    import warnings  # deferred: this module stays import-light

    warnings.warn(message, StitchkitWarning, stacklevel=2)
