"""How the command line ends: errors users can fix as one line without a traceback, and the exit codes.

The contract: an error the user can fix (a bad option or file, a refused run folder, an operating-system
error such as a read-only folder or a full disk) is one line on stderr, ``aligniform COMMAND: error: ...``,
naming the option or file and what to do, and the exit code is :data:`EXIT_USER_ERROR`. The library names
options as backticked field names; :func:`spell_options` spells them as the command's parser does. Commands print
what they computed before they save it, so a failure to save loses nothing the terminal did not show.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from ..config import ConfigError
from ..errors import render_options

#: Exit code of a command whose work ran but failed: a training run's loss diverged, a sweep's run failed.
EXIT_DIVERGED = 1
#: Exit code of an error the user can fix: bad options, missing data, a corrupt checkpoint, an OS error.
EXIT_USER_ERROR = 2
#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error to print as one line (exit code :data:`EXIT_USER_ERROR`).

    Raised by the command modules, whose messages may spell flags directly (``--max-pairs``); an option
    named in backticks is spelled as the command spells it, as in library errors (:func:`spell_options`).
    """


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``aligniform train: error: ...``, and exit code 2.

    argparse prints the whole usage block above its error; the block says nothing about the mistake and
    pushes the line that does off a small terminal. ``--help`` stays complete.

    Examples:
        >>> parser = OneLineParser(prog="aligniform train")
        >>> _ = parser.add_argument("--epochs", type=int)
        >>> import contextlib, io
        >>> with contextlib.redirect_stderr(io.StringIO()) as err:
        ...     try:
        ...         parser.parse_args(["--epochs", "nan"])
        ...     except SystemExit as exit:
        ...         print(exit.code)
        2
        >>> print(err.getvalue().strip())
        aligniform train: error: argument --epochs: invalid int value: 'nan' (see aligniform train --help)
    """

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())  # argparse's messages may wrap a list of choices
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {line} (see {self.prog} --help)\n")


# errno -> (what went wrong, what to do); the path and the option that named it are added in front.
_OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "make the folder writable, or choose a location you have access to"),
    errno.EPERM: ("operation not permitted", "choose a location you can write to, or change its permissions"),
    errno.EROFS: ("read-only file system", "choose a location on a writable file system"),
    errno.ENOSPC: ("no space left on the device", "free some space or choose a location on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose a location on another disk"),
    errno.EISDIR: ("is a folder, not a file", "give the path of a file"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose a path whose parents are folders"),
    errno.ENOENT: ("does not exist", "check the path"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n) or close other programs"),
    errno.ENFILE: ("too many open files on the system", "close other programs and try again"),
}


def run_handler(args: argparse.Namespace) -> int:
    """Run the parsed command's handler; print a fixable error as one line and return its exit code.

    The library names options as backticked field names (:mod:`aligniform.errors`); each message printed here
    spells them as this command does (:func:`spell_options`): ``knn_k`` in backticks reads ``--knn-k``.

    Examples:
        >>> from aligniform.errors import OptionError
        >>> def handler(args):
        ...     raise OptionError("`epochs` must be at least 1")
        >>> args = argparse.Namespace(command="demo", handler=handler, option_spellings={"epochs": "--epochs"})
        >>> import contextlib, io
        >>> with contextlib.redirect_stderr(io.StringIO()) as err:
        ...     run_handler(args)
        2
        >>> print(err.getvalue().strip())
        aligniform demo: error: --epochs must be at least 1
    """
    with interrupt_once():
        try:
            return args.handler(args)
        except ModuleNotFoundError as error:  # an optional package: name the extra that provides it
            print(f"aligniform {args.command}: error: {missing_module_message(error, args.command)}", file=sys.stderr)
            return EXIT_USER_ERROR
        # train/ and sweep.py need the 'train' extra, so their error classes are looked up only once a command
        # loaded them (a module's error is raised only once it is imported): the core install runs `analyze`.
        except _loaded("train", "TrainingDiverged") as error:
            print(f"aligniform: training stopped: {spell_options(error, args)}", file=sys.stderr)
            return EXIT_DIVERGED
        except _loaded("sweep", "SweepRunsFailed") as error:
            print(f"aligniform {args.command}: error: {spell_options(error, args)}", file=sys.stderr)
            return EXIT_DIVERGED
        except (ConfigError, UserError, ValueError, ImportError) as error:  # DatasetError, CheckpointError: ValueErrors
            print(f"aligniform {args.command}: error: {spell_options(error, args)}", file=sys.stderr)
            return EXIT_USER_ERROR
        except OSError as error:
            described = spell_options(describe_os_error(error, args), args)
            print(f"aligniform {args.command}: error: {described}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("aligniform: interrupted; resume a training run with --resume", file=sys.stderr)
            return EXIT_INTERRUPTED


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """Run the block with Ctrl-C raising ``KeyboardInterrupt`` once; further Ctrl-Cs are ignored.

    A second Ctrl-C while the first one's cleanup runs (closing data loaders, removing partial files)
    would otherwise interrupt the cleanup and end the process by the signal instead of exit code
    :data:`EXIT_INTERRUPTED`. Outside the main thread, or where SIGINT is ignored, the block runs unchanged.
    """
    # Outside the main thread Python cannot set handlers; an ignored SIGINT (a background job) stays ignored.
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        yield
        return
    interrupted = False

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupted
        if interrupted:  # the first one is being handled: let its cleanup finish
            return
        interrupted = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        # After an interrupt the process is about to exit 130: a late Ctrl-C must not change that.
        signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted else (previous or signal.SIG_DFL))


def spell_options(error: BaseException | str, args: argparse.Namespace) -> str:
    """An error's message with each backticked option field name spelled as this command spells it.

    The spelling comes first from ``args.handler_spellings``, a hook a handler may set before it calls the
    library (a mapping, or a function returning ``None`` for names it does not know), then from
    ``args.option_spellings`` (:func:`option_spellings` of the command's parser, set by
    :func:`aligniform.cli.app.build_parser`). ``aligniform study`` uses the hook for its ``--set`` options,
    whose names depend on the study: ``args.handler_spellings = lambda name: f"--set {name}" if name in
    fields else None``. A name neither knows keeps its backticks.

    Examples:
        >>> args = argparse.Namespace(option_spellings={"knn_k": "--knn-k", "checkpoint": "CHECKPOINT"})
        >>> spell_options("`knn_k` (5000) is above the training set; lower `knn_k` or `k2`", args)
        '--knn-k (5000) is above the training set; lower --knn-k or `k2`'
        >>> args.handler_spellings = {"repeats": "--set repeats"}
        >>> spell_options("`repeats` must be >= 2, not found in `checkpoint`", args)
        '--set repeats must be >= 2, not found in CHECKPOINT'
    """
    hook = getattr(args, "handler_spellings", None) or {}
    parser_names: Mapping[str, str] = getattr(args, "option_spellings", None) or {}
    first = hook.get if isinstance(hook, Mapping) else hook

    def spell(name: str) -> str | None:
        return first(name) or parser_names.get(name) or None

    return render_options(str(error), spell)


def _loaded(module: str, *names: str) -> tuple[type[BaseException], ...]:
    """The named exception classes of ``aligniform.<module>`` if it is imported, else none (matching no error)."""
    found = sys.modules.get(f"aligniform.{module}")
    return tuple(getattr(found, name) for name in names) if found is not None else ()


#: The extra each command needs first: a module it misses that this extra provides is attributed to it (matplotlib
#: is in both 'train' and 'plots'; `aligniform demo` wants 'train').
_COMMAND_EXTRAS = {command: "train" for command in ("train", "evaluate", "demo", "sweep", "study", "report")}


def missing_module_message(error: ModuleNotFoundError, command: str) -> str:
    """The one line for a missing module: the extra that provides it and how to install it, else pip's own message.

    Examples:
        >>> missing_module_message(ModuleNotFoundError("No module named 'kornia'", name="kornia"), "train")
        "the 'train' extra is not installed (no module named 'kornia'): pip install 'aligniform[train]'"
        >>> missing_module_message(ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"), "analyze")
        "the 'plots' extra is not installed (no module named 'matplotlib'): pip install 'aligniform[plots]'"
    """
    from .._extras import extra_for, missing_extra_message

    name = error.name or ""
    preferred = _COMMAND_EXTRAS.get(command)
    # The command's own extra when it provides the module; else the extra the import site named (a library
    # MissingExtraError), else the one that provides it.
    if name and preferred and extra_for(name, prefer=preferred) == preferred:
        extra: str | None = preferred
    else:
        extra = getattr(error, "extra", None) or (extra_for(name) if name else None)
    if extra is None:  # not an optional package: a broken install, reported as Python says it
        return str(error)
    return missing_extra_message(extra, name or None)


def describe_os_error(error: OSError, args: argparse.Namespace | None = None) -> str:
    """One line for an operating-system error: the option and path it concerns, what went wrong, what to do.

    Errors raised with a message of their own (no ``errno``) keep it. A failed write into a run folder
    (:class:`~aligniform.train.run_folder.RunFolderWriteError`, whose ``hint`` says how to go on) is
    ``cannot write FILE: <the system's words>; <what to do>, then <the hint>``, its options spelled as
    the command line spells them.

    Examples:
        >>> import errno
        >>> describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/runs/a/eval.json"))
        '/runs/a/eval.json: permission denied; make the folder writable, or choose a location you have access to'
        >>> args = argparse.Namespace(figures=Path("plot.png"), option_names={"figures": "--figures"})
        >>> describe_os_error(FileExistsError(errno.EEXIST, "File exists", "plot.png"), args)
        '--figures plot.png: is a file, not a folder; give a folder (or remove the file)'
        >>> from aligniform.train import RunFolderWriteError
        >>> full = RunFolderWriteError(OSError(errno.ENOSPC, "No space left on device"), "runs/a/checkpoint.pt")
        >>> describe_os_error(full, argparse.Namespace(option_names={"resume": "--resume"}))
        'cannot write runs/a/checkpoint.pt: No space left on device; free some space or choose a location on \
another disk, then rerun the same command with --resume (the last finished epoch is kept)'
    """
    if error.errno is None:
        return str(error)
    problem, fix = os_error_reason(error)
    hint = getattr(error, "hint", None)
    if isinstance(hint, str):
        names: Mapping[str, str] = getattr(args, "option_names", {}) if args is not None else {}
        then = render_options(hint, names)
        return f"cannot write {os.fsdecode(error.filename)}: {error.strerror}; {fix}, then {then}"
    if error.filename is None:
        return f"{problem}; {fix}"
    return f"{_subject(error.filename, args)}: {problem}; {fix}"


def os_error_reason(error: OSError) -> tuple[str, str]:
    """What went wrong in an operating-system error and what to do about it, in words (without the path).

    Examples:
        >>> import errno
        >>> os_error_reason(OSError(errno.ENOSPC, "No space left on device"))
        ('no space left on the device', 'free some space or choose a location on another disk')
    """
    if error.errno == errno.EEXIST and error.filename is not None:
        if Path(os.fsdecode(error.filename)).is_dir():
            return "already exists", "choose another path or remove it"
        return "is a file, not a folder", "give a folder (or remove the file)"
    if error.errno in _OS_ERRORS:
        return _OS_ERRORS[error.errno]
    return (error.strerror or str(error)).lower(), "check the path and try again"


def path_argument(text: str) -> Path:
    """An argparse ``type`` for paths: an empty one is refused (``Path("")`` would silently mean ``.``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    return Path(text)


def _subject(path: Any, args: argparse.Namespace | None) -> str:
    """``--option value`` when a command-line option named the failing path (or a folder of it), else the path."""
    failing = os.path.abspath(os.fsdecode(path))
    names: Mapping[str, str] = getattr(args, "option_names", {}) if args is not None else {}
    best: tuple[int, str] | None = None
    for dest, value in (vars(args) if args is not None else {}).items():
        for given in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(given, (str, Path)) or dest in ("command", "option_names") or not str(given):
                continue
            given_path = os.path.abspath(os.path.expanduser(os.fspath(given)))
            # 0: the option is the failing path; 1: the failing path lies in it; 2: it lies in the failing path.
            if failing == given_path:
                rank = 0
            elif failing.startswith(given_path.rstrip(os.sep) + os.sep):
                rank = 1
            elif given_path.startswith(failing.rstrip(os.sep) + os.sep):
                rank = 2
            else:
                continue
            spelled = names.get(dest, "")
            shown = f"{spelled} {given}".strip()
            text = shown if rank == 0 else f"{shown} ({os.fsdecode(path)})"
            if best is None or rank < best[0]:
                best = (rank, text)
    return best[1] if best is not None else os.fsdecode(path)


def option_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """How the user spells each option of a (sub-)parser, by destination: ``{"output": "-o/--output"}``.

    Positional arguments are spelled by their value alone (an empty name).
    """
    names = {}
    for action in parser._actions:  # argparse offers no public list of a parser's actions
        strings = action.option_strings
        names[action.dest] = "/".join(strings[:2]) if strings else ""
    return names


def option_spellings(parser: argparse.ArgumentParser) -> dict[str, str]:
    """How an error message spells each option of a (sub-)parser, by destination.

    An option is spelled by its flags as :func:`option_names` gives them (``"-o/--output"``), a positional
    argument by the name its usage shows (its metavar, else its destination).

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> _ = parser.add_argument("checkpoint", metavar="CHECKPOINT")
        >>> _ = parser.add_argument("--knn-k", type=int)
        >>> option_spellings(parser)["checkpoint"], option_spellings(parser)["knn_k"]
        ('CHECKPOINT', '--knn-k')
    """
    spellings = {}
    for action in parser._actions:  # argparse offers no public list of a parser's actions
        if action.dest == argparse.SUPPRESS:
            continue
        if action.option_strings:
            spellings[action.dest] = "/".join(action.option_strings[:2])
        else:
            metavar = action.metavar if isinstance(action.metavar, str) else None
            spellings[action.dest] = metavar or action.dest
    return spellings
