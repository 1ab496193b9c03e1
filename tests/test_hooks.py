"""Tier 1: the answer rules and the hooks, as units (no bake)."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import answer_rules
import jinja2
import project_setup
import pytest
from conftest import HOOKS, TEMPLATE, default_answers


def render_hook(name: str, answers: dict) -> str:
    """The hook's source as cookiecutter renders it for these answers."""
    source = (HOOKS / name).read_text()
    context = {**answers, "_repo_dir": str(TEMPLATE)}
    environment = jinja2.Environment(extensions=[answer_rules.AnswerRulesExtension])
    return environment.from_string(source).render(cookiecutter=context)


def load_hook(name: str, answers: dict) -> dict:
    """Execute the rendered hook's module body (not its main) and return its globals."""
    namespace = {"__name__": "hook_under_test"}
    exec(compile(render_hook(name, answers), name, "exec"), namespace)
    return namespace


def test_default_answers_pass():
    assert answer_rules.validate(default_answers()) == []


BAD_ANSWERS = [
    ("project_slug", "../evil", "'..'"),
    ("project_slug", "/tmp/evil", "absolute path"),
    ("project_slug", "a/b", "'/'"),
    ("project_slug", "a\\b", "backslash"),
    ("project_slug", ".hidden", "leading '.'"),
    ("project_slug", "My Project", "is not lowercase letters"),
    ("package_name", "os", "standard library"),
    ("package_name", "json", "standard library"),
    ("package_name", "sklearn", "shadows a dependency"),
    ("package_name", "numpy", "shadows a dependency"),
    ("package_name", "requests", "shadows a dependency"),
    ("package_name", "class", "keyword"),
    ("package_name", "data", "directory of the project layout"),
    ("package_name", "my-package", "is not lowercase letters"),
    ("project_name", 'say "hi"', "quote character"),
    ("author", "O'Brien", "quote character"),
    ("description", "{{ 7 * 7 }}", "Jinja brace"),
    ("description", "{% raw %}", "Jinja brace"),
    ("project_name", "bell\x07", "control character U+0007"),
    ("project_name", "line\nbreak", "control character U+000A"),
    ("author", "abc\u202edef", "bidirectional formatting character U+202E"),
    ("author", "zero\u200bwidth", "formatting character U+200B"),
    ("project_name", "", "must not be empty"),
    ("author", "   ", "must not be empty"),
    ("description", "x" * 201, "over the limit of 200"),
    ("project_slug", "a" * 65, "over the limit of 64"),
    ("python_version", "2.7", "is not one of"),
    ("dataset", "iris", "is not one of"),
    ("dvc_remote", "ftp", "is not one of"),
    ("dvc_remote_url", "gs://bucket/x", "is a URL, but dvc_remote is 'local'"),
]


@pytest.mark.parametrize(("key", "value", "rule"), BAD_ANSWERS, ids=lambda v: repr(v)[:30])
def test_bad_answer_is_refused_naming_rule_and_value(key, value, rule):
    answers = {**default_answers(), key: value}
    problems = answer_rules.validate(answers)
    assert problems, f"{key}={value!r} was accepted"
    assert any(problem.startswith(f"{key}:") and rule in problem for problem in problems), problems
    shown = repr(value) if len(value) <= 24 else repr(value[:24])
    if value.strip():
        assert any(shown in problem for problem in problems), problems


def test_remote_url_must_match_the_remote_kind():
    answers = {**default_answers(), "dvc_remote": "s3", "dvc_remote_url": "gs://bucket/x"}
    assert "starting with 's3://'" in answer_rules.validate(answers)[0]
    answers["dvc_remote_url"] = "s3://bucket/store"
    assert answer_rules.validate(answers) == []


def test_dependency_names_come_from_the_shipped_locks():
    names = answer_rules.dependency_import_names()
    assert {"numpy", "scipy", "dvc", "hydra", "requests", "sklearn"} <= names
    assert project_setup.LOCK_PLACEHOLDER_SLUG.replace("-", "_") in names


INJECTIONS = [
    '"""; import os; os.system("touch PWNED"); """',
    "trailing backslash \\",
    '\\""" + __import__(\'os\').system(\'touch PWNED\') + """',
    "}} {{ 7*7 }} {% if 1 %}",
    "line\u2028separator\x00nul",
]


@pytest.mark.parametrize("hook", ["pre_gen_project.py", "post_gen_project.py"])
@pytest.mark.parametrize("payload", INJECTIONS, ids=range(len(INJECTIONS)))
def test_answers_reach_hooks_only_as_data(hook, payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    answers = {**default_answers(), "description": payload, "author": payload}
    source = render_hook(hook, answers)
    ast.parse(source)
    namespace = load_hook(hook, answers)
    assert namespace["ANSWERS"]["description"] == payload
    assert namespace["ANSWERS"]["author"] == payload
    assert not (tmp_path / "PWNED").exists()


def test_pre_gen_hook_refuses_bad_answers_and_accepts_good(capsys):
    good = load_hook("pre_gen_project.py", default_answers())
    assert good["main"]() == 0
    bad = load_hook("pre_gen_project.py", {**default_answers(), "project_slug": "../x"})
    assert bad["main"]() == 1
    err = capsys.readouterr().err
    assert "project_slug: '../x'" in err and "nothing was written" in err


def test_check_answers_filter_stops_cookiecutter_with_a_clean_message():
    from cookiecutter.exceptions import FailedHookException

    with pytest.raises(FailedHookException, match=r"package_name: 'os' shadows"):
        answer_rules.check_answers({**default_answers(), "package_name": "os"})
    assert answer_rules.check_answers(default_answers()) == "yes"


def test_missing_bake_requirements_name_the_command_that_installs_them(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("UV", raising=False)
    missing = answer_rules.missing_bake_requirements()
    assert [entry.split()[0] for entry in missing] == ["git", "uv"]
    assert "uv (install it: python3 -m pip install uv)" in missing
    monkeypatch.setenv("UV", "/opt/uv/bin/uv")
    assert [entry.split()[0] for entry in answer_rules.missing_bake_requirements()] == ["git"]


def lock_set(tmp_path: Path, name: str) -> Path:
    source = tmp_path / project_setup.LOCKS_DIR / name
    source.mkdir(parents=True)
    placeholder = project_setup.LOCK_PLACEHOLDER_SLUG
    (source / "uv.lock").write_text(f'[[package]]\nname = "{placeholder}"\nversion = "0.1.0"\n')
    (source / "runtime.lock").write_text("numpy==2.4.6\n")
    (source / "requirements.lock").write_text("dvc==3.67.1\n")
    return source


def test_install_locks_renames_the_project_and_removes_the_other_sets(tmp_path):
    lock_set(tmp_path, "py3.12-s3")
    lock_set(tmp_path, "py3.11-local")
    answers = {**default_answers(), "python_version": "3.12", "dvc_remote": "s3"}
    project_setup.install_locks(tmp_path, answers)
    assert f'name = "{answers["project_slug"]}"' in (tmp_path / "uv.lock").read_text()
    assert (tmp_path / "runtime.lock").read_text() == "numpy==2.4.6\n"
    assert not (tmp_path / project_setup.LOCKS_DIR).exists()


def test_install_locks_without_a_lock_set_names_the_fix(tmp_path):
    lock_set(tmp_path, "py3.11-local")
    answers = {**default_answers(), "python_version": "3.13", "dvc_remote": "ssh"}
    with pytest.raises(project_setup.BakeError, match=r"py3.13-ssh.*make locks"):
        project_setup.install_locks(tmp_path, answers)


def test_every_offered_answer_set_has_a_shipped_lock_set():
    locks = TEMPLATE / "{{cookiecutter.project_slug}}" / project_setup.LOCKS_DIR
    shipped = {path.name for path in locks.iterdir()}
    expected = {
        project_setup.lock_set_name(python, remote, model)
        for python in answer_rules.CHOICES["python_version"]
        for remote in answer_rules.CHOICES["dvc_remote"]
        for model in answer_rules.CHOICES["model"]
    }
    assert shipped == expected
    assert len(shipped) == 15 * (1 + len(project_setup.MODEL_LIBRARIES))


def test_default_remote_is_a_local_directory_outside_the_project(tmp_path):
    project = tmp_path / "proj"
    url = project_setup.remote_url(project, default_answers())
    assert os.path.isabs(url)
    assert not Path(url).is_relative_to(project)
    cloud = {**default_answers(), "dvc_remote": "gcs"}
    assert project_setup.remote_url(project, cloud).startswith("gs://")


def test_cookiecutter_json_choices_match_the_rules():
    data = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    for key, allowed in answer_rules.CHOICES.items():
        assert tuple(data[key]) == allowed


def test_the_test_runner_keeps_each_xdist_group_on_one_worker(tmp_path):
    """`make test` shares slow fixtures through xdist groups; a pytest that drops the group
    (9.2 with xdist 3.8 did, silently) would rebuild them on every worker."""
    (tmp_path / "test_groups.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.xdist_group('one')\ndef test_a():\n    pass\n\n"
        "@pytest.mark.xdist_group('one')\ndef test_b():\n    pass\n\n"
        "def test_c():\n    pass\n"
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        "2",
        "--dist",
        "loadgroup",
        "-v",
        "-p",
        "no:cacheprovider",
    ]
    done = subprocess.run(
        [*command, "test_groups.py"], cwd=tmp_path, capture_output=True, text=True
    )
    placed = {
        test: worker
        for worker, test in re.findall(
            r"\[(gw\d)\] .*PASSED test_groups\.py::(test_[ab])@one", done.stdout
        )
    }
    assert set(placed) == {"test_a", "test_b"}, done.stdout
    assert placed["test_a"] == placed["test_b"], done.stdout
