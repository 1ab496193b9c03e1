"""What dvc.yaml declares, read through DVC's own parser (``${...}`` interpolation included):
the stages, what each reads and writes, and the model artifact. Verification and rebuild
learn from it what to rerun and what to compare, so the machinery names no stage, plot or
path of the team's: a new stage or plot is compared as soon as dvc.yaml declares it.
"""

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import ConfigError

DVC_YAML = "dvc.yaml"
MODEL_TYPE = "model"


@dataclass(frozen=True)
class Output:
    """A declared output: ``path`` relative to the project (POSIX), how DVC declares it
    (``outs``, ``metrics`` or ``plots``), and whether DVC caches it (``cache: false`` not)."""

    path: str
    kind: str
    cached: bool = True


@dataclass(frozen=True)
class Stage:
    name: str
    command: str
    wdir: str
    deps: tuple[str, ...]
    outs: tuple[Output, ...]


@dataclass(frozen=True)
class Pipeline:
    """The stages of dvc.yaml in their order there, and the path of its model artifact."""

    stages: tuple[Stage, ...]
    model: str | None
    # What the top-level plots: draws (files or folders): the results people look at.
    drawn: tuple[str, ...] = ()

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    def writer_of(self, path: str | Path) -> Stage | None:
        """The stage that declares ``path`` (or a directory holding it) as an output."""
        wanted = _posix(path)
        for stage in self.stages:
            if any(_within(wanted, out.path) for out in stage.outs):
                return stage
        return None

    def upstream(self, name: str) -> list[Stage]:
        """Every stage ``name`` depends on, directly or not, each after those it needs."""
        ordered: list[Stage] = []

        def visit(stage: Stage, trail: tuple[str, ...]) -> None:
            for dep in stage.deps:
                for writer in self._writers(dep):
                    if writer.name in trail:
                        continue
                    visit(writer, (*trail, writer.name))
                    if writer not in ordered:
                        ordered.append(writer)

        visit(self.stage(name), (name,))
        return ordered

    def in_order(self) -> list[Stage]:
        """Every stage, each after those it depends on (as DVC runs them), otherwise in
        dvc.yaml's order: a block added at the end of the file may feed one above it."""
        ordered: list[Stage] = []
        for stage in self.stages:
            for needed in [*self.upstream(stage.name), stage]:
                if needed not in ordered:
                    ordered.append(needed)
        return ordered

    def downstream(self, names: set[str]) -> set[str]:
        """``names`` and every stage that depends on them, directly or not."""
        found = set(names)
        changed = True
        while changed:
            changed = False
            for stage in self.stages:
                if stage.name in found:
                    continue
                if any(writer.name in found for dep in stage.deps for writer in self._writers(dep)):
                    found.add(stage.name)
                    changed = True
        return found

    def results(self, names: set[str]) -> list[Output]:
        """The outputs of the stages ``names`` that are results: declared metrics or plots,
        or drawn by the top-level plots: (the plot tables), never a record of hashes."""
        return [
            out
            for stage in self.stages
            if stage.name in names
            for out in stage.outs
            if out.kind != "outs" or any(_within(out.path, drawn) for drawn in self.drawn)
        ]

    def _writers(self, dep: str) -> list[Stage]:
        return [
            stage
            for stage in self.stages
            if any(_within(dep, out.path) or _within(out.path, dep) for out in stage.outs)
        ]


def _posix(path: str | Path) -> str:
    return PurePosixPath(Path(path).as_posix()).as_posix()


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def read(root: str | Path) -> Pipeline:
    """The pipeline that ``root``/dvc.yaml declares, paths relative to ``root``."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    root = Path(root).resolve()
    try:
        # uninitialized: a copy of the pipeline without .dvc/ (the project's own tests run
        # the stages in one) is read the same way.
        with Repo(str(root), uninitialized=True) as repo:
            stages = [
                _stage(root, stage)
                for stage in repo.index.stages
                if isinstance(stage, PipelineStage)
            ]
            model = next(
                (
                    (Path(dvcfile).parent / artifact.path).as_posix()
                    for dvcfile, artifacts in repo.artifacts.read().items()
                    for artifact in artifacts.values()
                    if artifact.type == MODEL_TYPE
                ),
                None,
            )
    except DvcException as error:
        raise ConfigError(f"{root / DVC_YAML}: DVC cannot read it ({error}).") from None
    return Pipeline(tuple(stages), _relative(root, root / model) if model else None, _drawn(root))


def _drawn(root: Path) -> tuple[str, ...]:
    """The paths dvc.yaml's top-level ``plots:`` names (an entry whose ``y`` maps files to
    columns names those files)."""
    import yaml

    entries = (yaml.safe_load((root / DVC_YAML).read_text(encoding="utf-8")) or {}).get("plots")
    found: list[str] = []
    for entry in entries or []:
        key, props = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        y = (props or {}).get("y")
        names = list(y) if isinstance(y, dict) else [key]
        found += [_relative(root, root / name) for name in names if (root / name).exists()]
    return tuple(found)


def _relative(root: Path, path: str | Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), root)).as_posix()


def _stage(root: Path, stage) -> Stage:
    command = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)

    def kind(out) -> str:
        return "metrics" if out.metric else "plots" if out.plot else "outs"

    return Stage(
        name=stage.name,
        command=command,
        wdir=_relative(root, stage.wdir),
        deps=tuple(_relative(root, dep.fs_path) for dep in stage.deps),
        outs=tuple(
            Output(_relative(root, out.fs_path), kind(out), out.use_cache) for out in stage.outs
        ),
    )
