"""MkDocs hooks: the command-line and study-config references are generated at build time, from the
argparse parsers (``stitchkit.cli.build_parser``) and the study schema (``stitchkit.study.config.SCHEMA``),
so they cannot drift from the code; the repository's CONTRIBUTING.md becomes the Contributing page. Nothing
is written into docs/: the pages are added to the build as generated files."""

from __future__ import annotations

import argparse
import os
import re

from mkdocs.structure.files import File, Files

from stitchkit.cli import build_parser
from stitchkit.study.config import SCHEMA, toml_value

CLI_PAGE = "reference/cli.md"
CONFIG_PAGE = "reference/config.md"
#: the repository's CONTRIBUTING.md, published as a page of the site (one text, read in both places)
CONTRIBUTING_PAGE = "contributing.md"
CONTRIBUTING_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "CONTRIBUTING.md")
#: the width argparse wraps help at, so that the page does not depend on the terminal of the build
HELP_WIDTH = "100"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _command_section(name: str, parser: argparse.ArgumentParser, depth: int) -> list[str]:
    lines = [f"{'#' * depth} `{parser.prog}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for sub_name, sub in _subcommands(parser).items():
        lines += _command_section(f"{name} {sub_name}", sub, depth + 1)
    return lines


def cli_reference() -> str:
    """Every command's ``--help``, generated from the parsers."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        parser = build_parser()
        lines = [
            "# Command-line reference",
            "",
            "Generated from the command line's own parsers when the documentation is built: each section is what "
            "`stitchkit COMMAND --help` prints. Errors are one line, `stitchkit: error: …`, with exit code 2.",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
            "",
        ]
        for name, sub in _subcommands(parser).items():
            lines += _command_section(name, sub, 2)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(lines)


def _type_name(spec) -> str:
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    return " or ".join("none" if t is type(None) else t.__name__ for t in types)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    """Every study-config key with its type, default, allowed values and meaning, generated from the schema."""
    lines = [
        "# Study config reference",
        "",
        "Generated from the study schema when the documentation is built (`stitchkit study --schema` prints the "
        "same keys as commented TOML). A study config is a TOML (or YAML) file with these sections; every key is "
        "optional and a missing key takes its default. `examples/quickstart.toml` and `examples/demo.toml` are "
        "commented examples.",
        "",
    ]
    for section, keys in SCHEMA.items():
        lines += [f"## `[{section}]`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for key, spec in keys.items():
            default = "none" if spec.default is None else toml_value(spec.default)
            choices = f" One of: {', '.join(f'`{c}`' for c in spec.choices)}." if spec.choices else ""
            lines.append(
                f"| `{key}` | {_type_name(spec)} | `{_cell(default)}` | {_cell(spec.help.rstrip('.'))}.{choices} |"
            )
        lines.append("")
    return "\n".join(lines)


#: a reStructuredText role around a rendered name (the docstrings use Sphinx's ``:func:`name```), with
#: an optional ``~`` that shows the last component only
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):<code>(~?)([\w.]+)</code>")


def _plain_role(match: re.Match) -> str:
    shown = match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)
    return f"<code>{shown}</code>"


def on_page_content(html: str, page, config, files) -> str:
    """Docstrings are reStructuredText-flavoured: show their roles as plain code names."""
    return _ROLE.sub(_plain_role, html)


def on_files(files: Files, config) -> Files:
    with open(CONTRIBUTING_FILE, encoding="utf-8") as f:
        contributing = f.read()
    for path, content in (
        (CLI_PAGE, cli_reference()),
        (CONFIG_PAGE, config_reference()),
        (CONTRIBUTING_PAGE, contributing),
    ):
        files.append(File.generated(config, path, content=content))
    return files
