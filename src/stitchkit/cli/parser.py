"""The argument parser of every command: argparse, with its errors on one line.

argparse prints a multi-line usage and the *top-level* usage for an unknown flag of a subcommand.
:class:`Parser` instead prints one line, ``stitchkit: error: <what>; did you mean <closest>? (usage:
<the command's usage>; see `<command> --help`)``, and exits with code 2 like every other user error.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

_UNRECOGNIZED = "unrecognized arguments: "
_REQUIRED = "the following arguments are required: "
_INVALID_CHOICE = re.compile(r"invalid choice: '?(?P<given>[^' ]*)'? \(choose from (?P<choices>.*)\)")


def _subcommand_actions(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _closest(word: str, candidates: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_flags(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """The words that look like flags but are none of ``parser``'s (negative numbers are values)."""
    out = []
    for word in words:
        if word == "--":
            break
        if word.startswith("-") and word != "-" and not parser._negative_number_matcher.match(word):
            if word.split("=", 1)[0] not in parser._option_string_actions:
                out.append(word)
    return out


def suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """'did you mean …?' for a misspelled flag, subcommand or choice ('' when nothing is close)."""
    if message.startswith(_UNRECOGNIZED):
        flags = [s for action in parser._actions for s in action.option_strings]
        words = message[len(_UNRECOGNIZED) :].split(";", 1)[0].split()
        guesses = [_closest(word.split("=", 1)[0], flags) for word in words if word.startswith("-")]
        guesses = [g for g in guesses if g]
        return f"did you mean {' and '.join(dict.fromkeys(guesses))}?" if guesses else ""
    match = _INVALID_CHOICE.search(message)
    if match:
        choices = [c.strip().strip("'") for c in match.group("choices").split(",")]
        close = _closest(match.group("given"), choices)
        return f"did you mean {close!r}?" if close else ""
    return ""


def compact_usage(parser: argparse.ArgumentParser) -> str:
    """The command, its required arguments and ``[options]``, on one line."""
    words, optional = [parser.prog], False
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            words += [action.metavar or "{" + ",".join(action.choices) + "}", "..."]
        elif action.option_strings:
            if action.required:
                words.append(f"{action.option_strings[0]} {action.metavar or action.dest.upper()}")
            else:
                optional = True
        else:
            name = action.metavar or action.dest
            words.append({"?": f"[{name}]", "*": f"[{name} ...]", "+": f"{name} [...]"}.get(action.nargs, name))
    if optional:
        words.insert(1, "[options]")
    return " ".join(words)


def one_line_error(parser: argparse.ArgumentParser, message: str, words: Sequence[str] = ()) -> str:
    """The error on one line. ``words`` are the arguments ``parser`` saw: a misspelled flag among them
    is reported before missing arguments (argparse checks those first, so ``train --widht`` would
    otherwise only hear that model_type is missing)."""
    message = " ".join(str(message).split())
    unknown = unknown_flags(parser, words) if message.startswith(_REQUIRED) else []
    if unknown:
        message = f"{_UNRECOGNIZED}{' '.join(unknown)}; also {message}"
    hint = suggestion(parser, message)
    if hint and unknown:
        head, _, rest = message.partition("; ")
        message, hint = head, f"{hint}; also {rest.removeprefix('also ')}"
    return f"{message}{'; ' + hint if hint else ''} (usage: {compact_usage(parser)}; see `{parser.prog} --help`)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line with a suggestion, reported by the subcommand
    they belong to. Subcommand parsers inherit the class (argparse's ``parser_class``)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"stitchkit: error: {one_line_error(self, message, getattr(self, '_words', ()))}\n")
        raise SystemExit(2)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._words = list(sys.argv[1:] if args is None else args)  # for error(): argparse does not pass them on
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.chosen(parsed).error(_UNRECOGNIZED + " ".join(extras))
        return parsed

    def chosen(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The (sub)command parser that ``parsed`` went through last."""
        for action in _subcommand_actions(self):
            sub = action.choices.get(getattr(parsed, action.dest, None) or "")
            if sub is not None:
                return sub.chosen(parsed) if isinstance(sub, Parser) else sub
        return self
