"""The documentation site builds offline in strict mode (a broken link, anchor or API reference fails),
and its generated references cover every command and every study-config key."""

import os
import subprocess
import sys
from pathlib import Path

from stitchkit.cli import build_parser
from stitchkit.study.config import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import hooks  # noqa: E402  (docs/hooks.py, the build's generator of the references; not a package)


def test_the_documentation_builds_strictly(tmp_path):
    env = dict(
        os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("reference/cli", "reference/config", "reference/api", "quickstart", "tutorials/notebook"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert all(name in api for name in ("direct_match", "task_loss_match", "compare", "ood_test", "Matrix"))


def test_the_cli_reference_has_every_command_and_option():
    page = hooks.cli_reference()
    for command in hooks._subcommands(build_parser()).values():
        assert f"## `{command.prog}`" in page
        for action in command._actions:
            assert all(flag in page for flag in action.option_strings)


def test_the_config_reference_has_every_key_with_its_default():
    page = hooks.config_reference()
    for section, keys in SCHEMA.items():
        body = page[page.index(f"## `[{section}]`") :]
        for key in keys:
            assert f"| `{key}` |" in body.split("\n## ", 1)[0], (section, key)
    assert '| `methods` | list | `["dm", "tlm"]` |' in page and "| `data_root` | str or none | `none` |" in page
