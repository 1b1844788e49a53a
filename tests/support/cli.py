"""The error contract of the command line, checked: one ``aligniform COMMAND: error:`` line, exit code 2, and the
folders a refused command was given left as they were."""

from pathlib import Path

import pytest

from aligniform.cli import main
from aligniform.cli.errors import EXIT_USER_ERROR
from tests.support.files import snapshot


def check_one_line(err: str, command: str, *fragments: str) -> str:
    """``err`` is one ``aligniform COMMAND: error:`` line holding every fragment, without a traceback; the line."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"aligniform {command}: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def one_line_error(capsys: pytest.CaptureFixture[str], command: str, *fragments: str) -> str:
    """The captured stderr is one ``aligniform COMMAND: error:`` line holding every fragment; no traceback."""
    return check_one_line(capsys.readouterr().err, command, *fragments)


def refused(capsys, root: Path, argv: list, command: str, *fragments: str, parser: bool = False) -> str:
    """``argv`` exits 2 with one line holding the fragments, and every entry under ``root`` is as it was.

    ``parser=True`` also takes a refusal by the argument parser (``SystemExit(2)``); without it the command must
    get past the parser and return 2.
    """
    before = snapshot(root)
    try:
        code = main([str(part) for part in argv])
    except SystemExit as exit:
        if not parser:
            raise
        code = exit.code
    assert code == EXIT_USER_ERROR
    line = one_line_error(capsys, command, *fragments)
    assert snapshot(root) == before
    return line
