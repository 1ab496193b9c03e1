"""What the DVC remote must keep at a commit: the outputs dvc.yaml declares uncached are read
by DVC's own parser from the commit's files, interpolation and vars files included."""

import re
import subprocess
from pathlib import Path

import pytest

from reproml.tools.errors import RegistryError
from reproml.tools.storage import uncached_outputs_at

DVC_YAML = """\
vars:
  - conf/extra.yaml
stages:
  train:
    cmd: python train.py
    outs:
      - models/model.pkl
      - ${paths.metrics}:
          cache: false
  evaluate:
    cmd: python evaluate.py
    metrics:
      - reports/${report}.json:
          cache: false
    plots:
      - plots/${paths.plot_dir}:
          cache: false
      - plots/cached.csv
"""


def commit(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(repo)}
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"],
    ):
        subprocess.run(command, cwd=repo, check=True, env=env)
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, env=env, capture_output=True)
    return done.stdout.decode().strip()


def test_uncached_outputs_are_read_through_dvcs_parser_at_the_commit(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    sha = commit(
        repo,
        {
            "dvc.yaml": DVC_YAML,
            "params.yaml": "paths:\n  metrics: reports/metrics.json\n  plot_dir: roc.csv\n",
            "conf/extra.yaml": "report: scores\n",
        },
    )
    # The workspace moves on: what counts is the commit's files.
    (repo / "params.yaml").write_text("paths:\n  metrics: elsewhere.json\n  plot_dir: x\n")
    assert uncached_outputs_at(repo, sha) == {
        "reports/metrics.json",
        "reports/scores.json",
        "plots/roc.csv",
    }


def test_a_vars_file_outside_the_repository_is_named_and_never_read(tmp_path):
    secret = tmp_path / "outside.yaml"
    secret.write_text("report: stolen\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    dvc_yaml = DVC_YAML.replace("  - conf/extra.yaml\n", "  - ../outside.yaml\n")
    sha = commit(repo, {"dvc.yaml": dvc_yaml, "params.yaml": "paths: {metrics: m, plot_dir: p}\n"})
    with pytest.raises(
        RegistryError,
        match=r"dvc\.yaml at \w{12}: vars: '../outside.yaml' is outside the repo.*Fix: ",
    ):
        uncached_outputs_at(repo, sha)


def test_a_commit_without_a_pipeline_has_no_uncached_outputs(tmp_path):
    sha = commit(tmp_path, {"README.md": "no pipeline\n"})
    assert uncached_outputs_at(tmp_path, sha) == set()


@pytest.mark.parametrize(
    ("stages", "problem"),
    [
        ("  s:\n    cmd: x\n    wdir: /\n    vars: [etc/hostname]\n", "wdir '/' leaves"),
        ("  s:\n    cmd: x\n    wdir: ../..\n", "wdir '../..' leaves"),
        ("  s:\n    cmd: x\n    vars: [/etc/hostname]\n", "vars: '/etc/hostname' is outside"),
        (
            "  s:\n    foreach: [1]\n    do:\n      cmd: x\n      vars: [../../x.yaml]\n",
            "vars: '../../x.yaml' is outside",
        ),
    ],
)
def test_a_stage_that_would_make_dvc_read_outside_the_repository_is_refused(
    tmp_path, stages, problem
):
    """A stage's own vars (relative to its wdir) and wdir are checked, however deep: DVC
    reads a vars file as YAML, whatever it holds."""
    sha = commit(tmp_path, {"dvc.yaml": "stages:\n" + stages, "params.yaml": "a: 1\n"})
    with pytest.raises(RegistryError, match=re.escape(problem) + ".*Fix: "):
        uncached_outputs_at(tmp_path, sha)


def test_a_stages_own_vars_file_in_its_wdir_is_read(tmp_path):
    stages = (
        "stages:\n  s:\n    cmd: x\n    wdir: sub\n    vars: [local.yaml]\n"
        "    outs:\n      - out/${name}.json:\n          cache: false\n"
    )
    sha = commit(
        tmp_path, {"dvc.yaml": stages, "params.yaml": "a: 1\n", "sub/local.yaml": "name: x\n"}
    )
    assert uncached_outputs_at(tmp_path, sha) == {"sub/out/x.json"}
