"""Make a folder of links to torch and its dependency closure as this interpreter has them installed.

``python check_wheel_base.py VERSION FOLDER``: used by tools/check_wheel.sh as the torch of its clean venvs (a .pth
line names FOLDER). Exits 1, making nothing, when this interpreter's torch is not VERSION (or packaging is missing).
Each distribution's top-level entries (packages, modules, its .dist-info) are linked, so pip in a venv that sees
FOLDER finds torch and its dependencies installed, and nothing else.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from pathlib import Path


def closure(name: str) -> list[metadata.Distribution]:
    """``name``'s distribution and those it requires (markers evaluated, no extras), each once."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, metadata.Distribution] = {}
    pending = [name]
    while pending:
        key = canonicalize_name(pending.pop())
        if key in found:
            continue
        found[key] = metadata.distribution(key)
        for text in found[key].requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(found.values())


def main() -> int:
    version, folder = sys.argv[1], Path(sys.argv[2])
    try:
        installed = metadata.version("torch")
        distributions = closure("torch")
    except (ImportError, metadata.PackageNotFoundError):
        return 1
    if installed.split("+")[0] != version:
        return 1
    folder.mkdir(parents=True)
    for distribution in distributions:
        root = Path(str(distribution.locate_file("")))
        for top in {Path(file).parts[0] for file in distribution.files or []}:
            if top in ("..", "__pycache__") or (folder / top).exists():
                continue
            if (root / top).exists():
                (folder / top).symlink_to(root / top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
