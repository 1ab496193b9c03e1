"""The baked README's console blocks, run as a user would: each block in one bash session
(so `source .venv/bin/activate` holds for the lines after it), in the project, stopping at
the first command that fails."""

import re
import subprocess
from pathlib import Path

BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(readme: Path) -> dict[str, list[str]]:
    """``{section title: [block text, ...]}`` for every console block, in README order."""
    found: dict[str, list[str]] = {}
    for section in re.split(r"^## ", readme.read_text(), flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        found[title.strip()] = [match.group(1) for match in BLOCK.finditer(body)]
    return found


def run_block(project: Path, text: str, env: dict, leave_out: tuple[str, ...] = ()):
    """Run one block's lines (except those containing any of ``leave_out``) in bash."""
    lines = [line for line in text.splitlines() if not any(part in line for part in leave_out)]
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    return subprocess.run(
        ["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True
    )
