"""The cases of the fault campaign (``tools/fault_campaign.py``): each option of each command × a set of bad values.

A case is generated, never written by hand one by one: for every command line option (every ``TrainConfig``
flag, every study option, every path and number of the other commands) the campaign takes the bad values of
the option's kind (numbers, words, lists, objective specs, input paths, output paths) and builds one command
line per value. Everything else on the line is valid and cheap (``digits``, one epoch, an 8-d encoder), and
where an accepted value would start long work (training, a study) the line also carries an output that is
refused only after every option was checked (an ``--out`` under a regular file): an accepted value then ends
in that one refusal, before anything is written.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Bad numbers: not a number, infinities, negative, zero, huge, beyond int64, not a number at all, empty, ...
NUMBERS = ("nan", "inf", "-inf", "-1", "0", "1e30", "99999999999999999999", "abc", "", "2.5", "-0", "1e-320")
#: Bad words for an option that takes a name (dataset, model, device, layer, ...).
WORDS = ("", "bogus", "ünïcödé", "x" * 5000, "../../etc/passwd", "nan")
#: Bad lists (``a,b,c``).
LISTS = ("", "a,b", "1,,2", "-1", "nan", "3,2", "1e30")
#: Bad objective specs: unknown terms, bad parameters, broken syntax, code.
OBJECTIVES = (
    "",
    "nope()",
    "contrastive(tau=0)",
    "contrastive(tau=nan)",
    "align(alpha=-1)",
    "uniform(t=inf)",
    "contrastive(tau=learn(0.5, min=2))",
    "2*",
    "align(alpha=2) +",
    "contrastive(tau=0.5, bogus=1)",
    "__import__('os').system('true')",
    "uniform(t=1e309)",
    "1e400*align(alpha=2)",
    "contrastive(tau=0.5) + contrastive(tau=0.5)",
)
#: Bad input paths (the names of the workspace's fixtures, see ``fault_campaign.Workspace``).
INPUTS = (
    "missing",
    "",
    "folder",
    "fifo",
    "dangling",
    "loop",
    "latin1.yaml",
    "binary.bin",
    "empty.txt",
    "file.txt/under",
    "toolong",
)
#: Bad output paths: a folder where a file goes (or a file where a folder goes), under a file, a run's file, ...
OUTPUTS = ("", "folder_or_file", "file.txt/under", "toolong", "run/checkpoint.pt", "run", "dangling", "loop")
OUTPUTS += ("readonly/out",)
#: The study options whose value is a path (they get :data:`INPUTS`).
STUDY_PATHS = {"grid", "seeds", "encoder", "demo", "correlation", "temperature", "theorem1", "latent_classes"}
STUDY_PATHS |= {"family", "update"}


@dataclass(frozen=True)
class Case:
    """One command line: ``argv`` (with ``{NAME}`` placeholders for the workspace's fixtures)."""

    command: str
    label: str
    argv: tuple[str, ...]


def _values_for(kind: object) -> tuple[str, ...]:
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        return LISTS
    if isinstance(kind, type) and kind in (int, float):
        return NUMBERS
    args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if args:
        return _values_for(args[0])
    return WORDS


def _holds_paths(kind: object) -> bool:
    """Whether a study option of this type names files or folders (text, or a tuple of texts), not numbers."""
    args = [arg for arg in typing.get_args(kind) if arg not in (type(None), Ellipsis)]
    return kind is str or bool(args) and all(arg is str for arg in args)


def train_cases() -> Iterator[Case]:
    """Every ``TrainConfig`` flag × the bad values of its kind, then ``--config`` and ``--out``."""
    from aligniform.cli.train import config_fields, config_flag
    from aligniform.config import TrainConfig

    base = ("train", "--dataset", "digits", "--epochs", "1", "--dim", "8", "--linear-probe", "none")
    hints = typing.get_type_hints(TrainConfig)
    for field in config_fields():
        if hints[field.name] is bool or field.name == "out":
            continue
        values = OBJECTIVES if field.name == "objective" else _values_for(hints[field.name])
        for value in values:
            yield Case("train", f"--{field.name} {value[:20]!r}", (*base, config_flag(field), value, "--out", "{SINK}"))
    for name in INPUTS:
        yield Case("train", f"--config {name}", (*base, "--config", f"{{{name}}}", "--out", "{SINK}"))
    for name in ("list.yaml", "unknown.yaml", "epochs_true.yaml", "epochs_nan.yaml", "bad.yaml", "out_only.yaml"):
        yield Case("train", f"--config {name}", (*base, "--config", f"{{{name}}}", "--out", "{SINK}"))
    for name in OUTPUTS:
        # --knn-k above the training set: refused once the data is loaded, before the first write.
        yield Case("train", f"--out {name}", (*base, "--knn-k", "100000", "--out", f"{{{name}}}"))
    yield Case("train", "--resume no run", (*base, "--resume", "--out", "{folder}"))
    yield Case("train", "--resume --overwrite", (*base, "--resume", "--overwrite", "--out", "{run}"))
    yield Case("train", "a run without --resume", (*base, "--out", "{run}"))
    yield Case("train", "unknown flag", (*base, "--bogus", "1"))


def eval_cases() -> Iterator[Case]:
    base = ("eval", "--protocol", "knn")
    for name in (*INPUTS, "truncated.pt", "empty.txt", "pairs.npz", "latin1.yaml"):
        yield Case("eval", f"CHECKPOINT {name}", (*base, f"{{{name}}}", "--json", "{NEW}.json"))
    for option in ("--layer", "--dataset"):
        for value in WORDS:
            yield Case(
                "eval", f"{option} {value[:20]!r}", (*base, "{run}/checkpoint.pt", option, value, "--json", "{NEW}")
            )
    for value in INPUTS:
        argv = (*base, "{run}/checkpoint.pt", "--data-dir", f"{{{value}}}", "--json", "{NEW}")
        yield Case("eval", f"--data-dir {value}", argv)
    for name in (*OUTPUTS, "input"):
        target = "{run}/checkpoint.pt" if name == "input" else f"{{{name}}}"
        yield Case("eval", f"--json {name}", (*base, "{run}/checkpoint.pt", "--json", target))
    for option, value in (("--protocol", "bogus"), ("--device", "tpu"), ("--device", "")):
        yield Case("eval", f"{option} {value!r}", ("eval", "{run}/checkpoint.pt", option, value, "--json", "{NEW}"))


def analyze_cases() -> Iterator[Case]:
    for name in (*INPUTS, "nan.npz", "ragged.npz", "onerow.npz", "cube.npz", "text.npz", "badlabels.npz", "run"):
        yield Case("analyze", f"PATH {name}", ("analyze", f"{{{name}}}"))
    for option in ("--npz", "--npy-dir"):
        for name in INPUTS:
            yield Case("analyze", f"{option} {name}", ("analyze", option, f"{{{name}}}"))
    for value in NUMBERS:
        yield Case("analyze", f"--max-pairs {value!r}", ("analyze", "{pairs.npz}", "--max-pairs", value))
    for name in (*OUTPUTS, "input"):
        target = "{arrays}" if name == "input" else f"{{{name}}}"
        yield Case("analyze", f"--figures {name}", ("analyze", "{arrays}", "--figures", target))
    for option in ("--split", "--layer", "--dataset"):
        for value in WORDS[:3]:
            yield Case("analyze", f"{option} {value!r}", ("analyze", "{run}/checkpoint.pt", option, value))
    yield Case("analyze", "two sources", ("analyze", "{pairs.npz}", "--npz", "{pairs.npz}"))
    yield Case("analyze", "--pairs without a model", ("analyze", "{pairs.npz}", "--pairs", "{empty.txt}"))
    yield Case("analyze", "no source", ("analyze",))
    for name in INPUTS:
        yield Case("analyze", f"--data-dir {name}", ("analyze", "{run}/checkpoint.pt", "--data-dir", f"{{{name}}}"))


def report_cases() -> Iterator[Case]:
    for name in (*INPUTS, "pairs.npz"):
        yield Case("report", f"RUN {name}", ("report", f"{{{name}}}", "-o", "{NEW}.html"))
    for name in (*OUTPUTS, "input"):
        target = "{run}/results.json" if name == "input" else f"{{{name}}}"
        yield Case("report", f"-o {name}", ("report", "{run}", "-o", target))


def compare_cases() -> Iterator[Case]:
    base = ("compare", "{pairs.npz}", "{arrays}", "--resamples", "10")
    for name in INPUTS:
        yield Case("compare", f"INPUT {name}", ("compare", "{pairs.npz}", f"{{{name}}}", "--out", "{NEW}"))
    for name in (*OUTPUTS, "input"):
        target = "{arrays}" if name == "input" else f"{{{name}}}"
        yield Case("compare", f"--out {name}", (*base, "--out", target))
    for option in ("--resamples", "--seed", "--min-score"):
        for value in NUMBERS:
            yield Case("compare", f"{option} {value!r}", (*base, option, value, "--out", "{NEW}"))
    for name in INPUTS:
        yield Case("compare", f"--pairs {name}", (*base, "--pairs", f"{{{name}}}", "--out", "{NEW}"))


def sweep_cases() -> Iterator[Case]:
    base = ("sweep", "{grid.yaml}", "--emit-commands")
    bad_grids = ("empty_grid.yaml", "huge_grid.yaml", "out_grid.yaml", "list.yaml", "unknown.yaml", "dup_grid.yaml")
    for name in (*INPUTS, *bad_grids, "bad.yaml"):
        yield Case("sweep", f"GRID {name}", ("sweep", f"{{{name}}}", "--emit-commands", "--out", "{NEW}"))
    for name in (*OUTPUTS, "input"):
        target = "{folder}" if name == "input" else f"{{{name}}}"
        yield Case("sweep", f"--out {name}", (*base, "--out", target))
    for option in ("--workers", "--max-runs"):
        for value in NUMBERS:
            yield Case("sweep", f"{option} {value!r}", (*base, option, value, "--out", "{NEW}"))


def study_cases() -> Iterator[Case]:
    """Each study's options × the bad values of their kinds (``--out`` poisoned), and ``--out`` of ``summary``."""
    from aligniform.studies import STUDY_NAMES, load_study

    for study in STUDY_NAMES:
        options = load_study(study)[1]
        hints = typing.get_type_hints(options)
        for field in dataclasses.fields(options):
            if hints[field.name] is bool:
                values: tuple[str, ...] = ("maybe", "", "2")
            elif field.name in STUDY_PATHS and _holds_paths(hints[field.name]):
                # A path is read only once the study runs: a fresh --out, which a refusal must leave uncreated.
                # An empty value of an option that defaults to empty leaves it unset: valid, and the study would run.
                unset = field.default in ("", None, ())
                for name in (name for name in INPUTS if name or not unset):
                    argv = ("study", study, "--set", f"{field.name}={{{name}}}", "--out", "{NEW}")
                    yield Case(f"study {study}", f"{field.name}={name}", argv)
                continue
            elif "objective" in field.name:
                values = OBJECTIVES[:6]
            else:
                values = _values_for(hints[field.name])
            for value in values:
                argv = ("study", study, "--set", f"{field.name}={value}", "--out", "{SINK}")
                yield Case(f"study {study}", f"{field.name}={value[:20]!r}", argv)
        yield Case(f"study {study}", "unknown option", ("study", study, "--set", "bogus=1", "--out", "{SINK}"))
        yield Case(f"study {study}", "no '='", ("study", study, "--set", "seed", "--out", "{SINK}"))
    for name in OUTPUTS:
        yield Case(
            "study summary", f"--out {name}", ("study", "summary", "--set", "progress=false", "--out", f"{{{name}}}")
        )


def demo_cases() -> Iterator[Case]:
    for value in NUMBERS:
        yield Case("demo", f"--epochs {value!r}", ("demo", "--epochs", value, "--out", "{SINK}"))
    for value in ("tpu", ""):
        yield Case("demo", f"--device {value!r}", ("demo", "--device", value, "--out", "{SINK}"))
    # Only outputs refused before the training starts: an accepted one would train two encoders for minutes.
    for name in ("", "file.txt", "file.txt/under", "toolong", "run/checkpoint.pt", "run"):
        yield Case("demo", f"--out {name}", ("demo", "--epochs", "1", "--out", f"{{{name}}}" if name else ""))


def configs_cases() -> Iterator[Case]:
    yield Case("configs", "unknown flag", ("configs", "--bogus"))
    yield Case("configs", "extra argument", ("configs", "mnist5k"))
    yield Case("(none)", "no command", ())
    yield Case("(none)", "unknown command", ("trian",))


def cli_cases() -> list[Case]:
    """Every CLI case, in a fixed order."""
    groups = (train_cases, eval_cases, analyze_cases, report_cases, compare_cases, sweep_cases, study_cases)
    return [case for group in (*groups, demo_cases, configs_cases) for case in group()]


def resolve(argv: tuple[str, ...], fixtures: dict[str, Path], new: Path) -> list[str]:
    """``argv`` with each ``{NAME}`` replaced by the fixture's path (``{NEW}``: a fresh path in the workspace)."""
    out = []
    for part in argv:
        text = part.replace("{NEW}", str(new))
        for name, path in fixtures.items():
            text = text.replace(f"{{{name}}}", str(path))
        out.append(text)
    return out
