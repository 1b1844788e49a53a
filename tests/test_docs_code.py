"""Every Python block of README.md and docs/ runs, unless it is marked as a fragment (docs/architecture.md, Checks).

A block is marked by an HTML comment on the last non-blank line before its fence (leave a blank line between
them, so that Markdown ends the comment before the fence), invisible on GitHub and on the site:

* ``<!-- fragment: why -->`` -- not a program on its own (a signature, an excerpt of a larger script, a
  placeholder path); never run.
* ``<!-- skip: why -->`` -- a complete program that needs what the tests do not have (a GPU, the network, a
  large dataset); reported as skipped with that reason.

The unmarked blocks of one page run in order in one namespace (a page builds on its earlier blocks), in a fresh
temporary folder, on CPU.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)(?P<info>[^\n]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>fragment|skip)\s*:\s*(?P<reason>.*?)\s*-->\s*$")


def python_blocks(text: str) -> list[tuple[int, str, str | None, str | None]]:
    """``(line, code, marker kind, reason)`` of every ```python block, in order.

    Examples:
        >>> python_blocks("<!-- fragment: a signature -->\\n\\n```python\\nf(x)\\n```\\n```python\\n1\\n```\\n")
        [(3, 'f(x)\\n', 'fragment', 'a signature'), (6, '1\\n', None, None)]
    """
    lines = text.splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, info, indent = match["fence"], match["info"].strip(), match["indent"]
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        language = info.split()[0].lower() if info else ""
        if language in ("python", "py"):
            code = "".join(line.removeprefix(indent) + "\n" for line in lines[index + 1 : end])
            before = index - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            previous = lines[before] if before >= 0 else ""
            marker = _MARKER.match(previous)
            blocks.append((index + 1, code, marker and marker["kind"], marker and marker["reason"]))
        index = end + 1
    return blocks


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p.read_text(encoding="utf-8"))], ids=page_id)
def test_every_marker_states_a_reason(page):
    for line, _, kind, reason in python_blocks(page.read_text(encoding="utf-8")):
        if kind is not None:
            assert reason, f"{page_id(page)}:{line}: a {kind} marker needs a reason after the colon"


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p.read_text(encoding="utf-8"))], ids=page_id)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    runnable = [(line, code) for line, code, kind, _ in blocks if kind is None]
    skipped = [f"line {line}: {reason}" for line, _, kind, reason in blocks if kind == "skip"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing is downloaded: a block needing the network is marked
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("DOCS_TEST_CUDA", ""))
    namespace: dict = {"__name__": "__docs__"}
    for line, code in runnable:
        try:
            exec(compile(code, f"{page_id(page)}:{line}", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - reported with the block's place
            raise AssertionError(f"{page_id(page)}, the block at line {line} failed: {error!r}") from error
    if skipped and not runnable:
        pytest.skip("; ".join(skipped))
