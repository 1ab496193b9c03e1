"""``dvc plots`` rendered to SVG without a network: DVC's HTML loads Vega from a CDN, so it is
blank offline; here DVC fills in its own templates (``dvc plots show --json``, or ``diff``
against revisions) and vl-convert's bundled Vega draws each one."""

import argparse
import html
import json
from pathlib import Path

from ..runtime.errors import ProjectError
from ..runtime.io import atomic_write_text
from ..runtime.proc import run
from .commands import dvc_command


def _specs(repo: Path, revisions: list[str]) -> dict[str, list[dict]]:
    command = ["diff", *revisions] if revisions else ["show"]
    shown = run(dvc_command("plots", *command, "--json"), cwd=repo)
    if shown.returncode != 0:
        raise ProjectError(f"`dvc plots {' '.join(command)}` failed: {shown.stderr.strip()}")
    return json.loads(shown.stdout).get("data", {})


def render(repo: Path, revisions: list[str], out: Path) -> Path:
    """One SVG per plot in ``out``, and an index.html that shows them all."""
    import vl_convert

    out = repo / out
    sections = []
    for name, entries in _specs(repo, revisions).items():
        for number, entry in enumerate(entries):
            if entry.get("type") != "vega":
                continue
            svg = vl_convert.vegalite_to_svg(entry["content"])
            file = out / f"{name.replace('/', '_')}-{number}.svg"
            atomic_write_text(file, svg)
            sections.append(f'<h2>{html.escape(name)}</h2>\n<img src="{file.name}">')
    if not sections:
        raise ProjectError("dvc found no plots: run `make repro` first")
    page = "<!DOCTYPE html>\n<html><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    return atomic_write_text(out / "index.html", page)


def run_plots(args: argparse.Namespace) -> int:
    """`make plots`."""
    from .registry import repo_root

    index = render(repo_root(), args.revisions, Path(args.out))
    print(f"plots: {index} (no network needed to view it)")
    return 0
