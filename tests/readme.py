"""The baked README's console blocks (and its docs/ pages'), run as a user would: each block
in one bash session (so `source .venv/bin/activate` holds for the lines after it), in the
project, stopping at the first command that fails."""

import re
import subprocess
from pathlib import Path

BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(project: Path) -> dict[str, list[str]]:
    """``{section title: [block text, ...]}`` for every console block of the project's README
    and of the reference pages it links to (docs/*.md), in README order, then the pages'.
    A title names one section across all of them."""
    found: dict[str, list[str]] = {}
    for page in [project / "README.md", *sorted((project / "docs").glob("*.md"))]:
        for section in re.split(r"^## ", page.read_text(), flags=re.MULTILINE)[1:]:
            title, _, body = section.partition("\n")
            assert title.strip() not in found, f"{page.name}: a second section {title!r}"
            found[title.strip()] = [match.group(1) for match in BLOCK.finditer(body)]
    return found


def run_block(project: Path, text: str, env: dict, leave_out: tuple[str, ...] = ()):
    """Run one block's lines (except those containing any of ``leave_out``) in bash."""
    lines = [line for line in text.splitlines() if not any(part in line for part in leave_out)]
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    return subprocess.run(
        ["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True
    )
