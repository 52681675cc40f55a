"""The study configuration: one TOML (or YAML) file describes a whole comparison.

The schema is declared once (section → key → type, default, allowed values, help; a :class:`Key` of
:mod:`.config_keys`): the sections every study has in :mod:`.config_sections`, and each configurable
unit kind's own section in its module of :mod:`stitchkit.study.unit_kinds` (``SECTION``, named by
``config_section=`` in its declaration); :data:`SCHEMA` puts them together. Validation errors name the
section, the key and what is allowed. ``examples/demo.toml`` is a commented example.
"""

from __future__ import annotations

import copy
import json
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..declarations import DeclarationError, catalogue, implementation
from ..errors import StitchkitError
from .config_checks import cross_checks
from .config_keys import Key
from .config_sections import LEADING_SECTIONS, TRAILING_SECTIONS


def kind_sections() -> dict[str, dict[str, Key]]:
    """The sections the unit kinds declare: a kind whose declaration names ``config_section=`` defines the
    section's keys as ``SECTION`` in its module (a ``dict`` of :class:`Key`); listed in the kinds' order
    (``config_order``, default ``order``)."""
    declared = [d for d in catalogue("unit_kind").values() if "config_section" in d.meta]
    out: dict[str, dict[str, Key]] = {}
    for decl in sorted(declared, key=lambda d: d.get("config_order", d.order)):
        name = decl.meta["config_section"]
        if name in LEADING_SECTIONS or name in TRAILING_SECTIONS or name in out:
            raise DeclarationError(
                f"unit kind {decl.name!r} ({decl.source}) declares the study config section "
                f"[{name}], which the study already has"
            )
        implementation("unit_kind", decl.name)  # imports its module
        section = getattr(sys.modules[decl.module], "SECTION", None)
        if not isinstance(section, dict) or not all(isinstance(k, Key) for k in section.values()):
            raise DeclarationError(
                f"unit kind {decl.name!r} ({decl.source}) declares config_section={name!r} "
                f"but its module {decl.module} has no SECTION dict of study.config.Key"
            )
        out[name] = section
    return out


class Schema(Mapping[str, dict[str, Key]]):
    """The study config's schema, section → key → :class:`Key`: the shared :data:`LEADING_SECTIONS`, the
    unit kinds' own sections (:func:`kind_sections`), then the shared :data:`TRAILING_SECTIONS`. Read anew
    when used, so a unit kind declared at run time (a notebook's or a test's) brings its section."""

    def sections(self) -> dict[str, dict[str, Key]]:
        return {**LEADING_SECTIONS, **kind_sections(), **TRAILING_SECTIONS}

    def __getitem__(self, section: str) -> dict[str, Key]:
        return self.sections()[section]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sections())

    def __len__(self) -> int:
        return len(self.sections())

    def __repr__(self) -> str:
        return f"Schema({list(self)})"


SCHEMA = Schema()


def _type_name(t: type | tuple[type, ...]) -> str:
    types = t if isinstance(t, tuple) else (t,)
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true/false",
        list: "a list",
        dict: "a table",
        type(None): "null",
    }
    return " or ".join(names.get(x, x.__name__) for x in types)


def validate_section(section: str, given: Any, source: str = "study config") -> dict[str, Any]:
    """One section with its defaults filled in and every key checked."""
    keys = SCHEMA[section]
    if not isinstance(given, dict):
        raise StitchkitError(f"{source}: [{section}] must be a table")
    bad = [k for k in given if k not in keys]
    if bad:
        raise StitchkitError(f"{source}: unknown key {section}.{bad[0]}; keys of [{section}]: {', '.join(keys)}")
    out = {}
    for key, spec in keys.items():
        value = given.get(key, copy.deepcopy(spec.default))
        where = f"{section}.{key}"
        types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
        if type(None) in types and isinstance(value, str) and value.lower() in ("", "none"):
            value = None  # TOML has no null: "" or "none" stands for it
        if isinstance(value, bool) and bool not in types:
            raise StitchkitError(f"{source}: {where} must be {_type_name(spec.type)}, got {value!r}")
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            pass
        elif not isinstance(value, types):
            raise StitchkitError(f"{source}: {where} must be {_type_name(spec.type)}, got {value!r}")
        if spec.choices is not None:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if item not in spec.choices:
                    raise StitchkitError(
                        f"{source}: {where} has {item!r}; allowed: {', '.join(map(str, spec.choices))}"
                    )
        if spec.check is not None and value is not None and not spec.check(value):
            raise StitchkitError(f"{source}: {where} {spec.check_text}, got {value!r}")
        out[key] = value
    if section in SECTION_CHECKS:
        SECTION_CHECKS[section](out, source)
    return out


def _check_findings(values: dict[str, Any], source: str) -> None:
    if values["id_auroc"] > values["ood_auroc"]:
        raise StitchkitError(
            f"{source}: findings.id_auroc ({values['id_auroc']}) must not exceed findings.ood_auroc "
            f"({values['ood_auroc']}): "
            "an AUROC cannot be both in-distribution and flagged OOD"
        )


#: checks between the keys of one section (run whenever the section is validated, also on its own)
SECTION_CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {"findings": _check_findings}


def validate(raw: dict[str, Any], source: str = "study config") -> dict[str, dict[str, Any]]:
    """Fill defaults and check every key; returns the complete configuration."""
    if not isinstance(raw, dict):
        raise StitchkitError(f"{source} must be a table of sections ({', '.join(SCHEMA)})")
    unknown = [s for s in raw if s not in SCHEMA]
    if unknown:
        raise StitchkitError(f"{source}: unknown section [{unknown[0]}]; sections: {', '.join(SCHEMA)}")
    config = {section: validate_section(section, raw.get(section, {}), source) for section in SCHEMA}
    cross_checks(config, source)
    given = raw.get("networks") or {}
    if "seeds" not in given and "checkpoints" not in given:
        # the defaults alone would silently start the full default study
        raise StitchkitError(
            f"{source} names no networks: give a [networks] section with seeds (networks to train) or checkpoints "
            f"(networks you have). "
            f"The smallest valid config is: [networks] seeds = [0, 1]  — see examples/demo.toml, or `stitchkit study "
            f"--schema` for every key"
        )
    return config


def load_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and validate a study config (TOML; YAML when PyYAML is installed)."""
    path = Path(path)
    if path.is_dir():
        raise StitchkitError(f"study config {str(path)!r} is a folder; give the config file (e.g. examples/demo.toml)")
    if not path.is_file():
        raise StitchkitError(f"study config {str(path)!r} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise StitchkitError(f"study config {str(path)!r} cannot be read as text ({exc})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]  # deferred: PyYAML loads only for .yaml configs
            except ImportError:
                raise StitchkitError(
                    "YAML study configs need PyYAML (pip install pyyaml); TOML needs nothing"
                ) from None
            raw = yaml.safe_load(text) or {}
        else:
            raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StitchkitError(f"study config {str(path)!r} is not valid TOML: {exc}") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml here
        if type(exc).__module__.startswith("yaml"):
            raise StitchkitError(f"study config {str(path)!r} is not valid YAML: {exc}") from None
        raise
    return validate(raw, source=f"study config {path.name}")


def toml_value(value: Any) -> str:
    """A config value as TOML: dicts as inline tables, lists as arrays (strings, numbers and booleans
    are written alike in JSON and TOML)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


#: the first line of :func:`describe_schema`
NULL_NOTE = (
    '# null = no value (YAML: null; TOML has no null: leave the key out, or write "none" or ""); '
    'a quoted "none" is the option\'s own value none'
)


def describe_schema() -> str:
    """The schema as commented TOML (for documentation and ``--help``); a default of None is shown as
    ``null`` (JSON's and YAML's; TOML has none, so such a key is left out there, or set to "none" or "")."""
    lines = [NULL_NOTE, ""]
    for section, keys in SCHEMA.items():
        lines.append(f"[{section}]")
        for key, spec in keys.items():
            default = toml_value(spec.default)  # None: null
            choices = f" (one of: {', '.join(map(str, spec.choices))})" if spec.choices else ""
            lines.append(f"# {key} = {default}  — {spec.help}{choices}")
        lines.append("")
    return "\n".join(lines)
