"""Every argument error of every command is one line `stitchkit: error: …` with exit code 2, names the
subcommand's usage, and suggests the closest flag, subcommand or choice."""

import subprocess
import sys

import pytest

from stitchkit.cli import build_parser, main
from stitchkit.cli.parser import compact_usage, suggestion


def _all_commands() -> list[list[str]]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    out = []
    for name, parser in sub.choices.items():
        actions = next((a for a in parser._actions if a.dest == "action"), None)
        out += [[name, verb] for verb in actions.choices] if actions else [[name]]
    return out


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("stitchkit: error: "), err
    return err


@pytest.mark.parametrize("command", _all_commands(), ids=" ".join)
def test_an_unknown_flag_of_every_command_is_one_line_with_its_usage(command, capsys):
    err = _error([*command, "--no-such-flag-anywhere"], capsys)
    assert "unrecognized arguments: --no-such-flag-anywhere" in err
    usage = f"(usage: stitchkit {' '.join(command)}"
    assert (
        usage in err
        and err[err.index(usage) + len(usage)] in " ;"
        and f"see `stitchkit {' '.join(command)} --help`" in err
    )


@pytest.mark.parametrize(
    "command",
    [c for c in _all_commands() if c not in (["models"], ["datasets"], ["study"], ["detector", "list"])],
    ids=" ".join,
)
def test_missing_arguments_of_every_command_are_one_line(command, capsys):
    err = _error(command, capsys)
    assert "the following arguments are required" in err and f"usage: stitchkit {' '.join(command)}" in err


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["train", "resnet18", "-dir", "x", "--widht", "8"], "did you mean --width?"),
        (["train", "resnet18", "-dir", "x", "--epoch=3"], "did you mean --epochs?"),
        (["stitch", "a", "b", "-", "-", "all", "all", "rc2c_pre", "--overwirte"], "did you mean --overwrite?"),
        (["detector", "train", "a.pt", "-", "--layerz", "all", "-dir", "x"], "did you mean --layers?"),
        (["trian", "resnet18"], "did you mean 'train'?"),
        (["detector", "chek", "a.pt"], "did you mean 'check'?"),
        (["train", "resnet18", "-dir", "x", "-o", "adm"], "did you mean 'adam'?"),
        (["stitch", "a", "b", "-", "-", "all", "all", "rc2c_pr"], "did you mean 'rc2c_pre'?"),
        (["similarity", "a", "b", "-", "-", "--measures", "ckaa"], "did you mean 'cka'?"),
    ],
)
def test_misspellings_get_a_suggestion(argv, expected, capsys):
    err = _error(argv, capsys)
    assert expected in err
    command = argv[0] if argv[0] != "trian" else None
    assert f"usage: stitchkit {command or ''}".rstrip() in err


def test_other_argparse_errors_are_one_line_too(capsys):
    err = _error(["train", "resnet18", "-dir", "x", "-e", "three"], capsys)
    assert "argument -e/--epochs: invalid int value: 'three'" in err and "usage: stitchkit train" in err
    err = _error([], capsys)
    assert "the following arguments are required: COMMAND" in err
    err = _error(["train", "resnet18", "-dir", "x", "--zzzzzz"], capsys)
    assert "did you mean" not in err  # nothing close: no guess


def test_the_compact_usage_and_suggestions():
    parser = build_parser()
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    assert compact_usage(train) == "stitchkit train [options] model_type -dir SAVE_DIR"
    assert (
        suggestion(train, "unrecognized arguments: --widht --lr-schedulr") == "did you mean --width and --lr-scheduler?"
    )
    assert suggestion(train, "unrecognized arguments: 3") == ""


def test_a_misspelled_flag_is_reported_before_missing_arguments(capsys):
    # argparse checks required arguments first; the misspelling is the more useful message
    err = _error(["train", "--widht", "8"], capsys)
    assert "unrecognized arguments: --widht; did you mean --width?" in err and "required: -dir/--save-dir" in err
    assert "usage: stitchkit train" in err


def test_a_real_process_exits_2_with_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "stitchkit", "train", "--widht", "8"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "did you mean --width?" in done.stderr
