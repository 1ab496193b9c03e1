"""The rules every cookiecutter answer must pass, in one place.

They run twice, from the same code: as a Jinja filter while cookiecutter renders the answers
(``__answers_checked`` in cookiecutter.json), which is before the project directory exists, and
again in the pre-generation hook. A bad answer is refused with the rule and the value named.
"""

import json
import keyword
import os
import re
import shutil
import sys
import unicodedata
from pathlib import Path

from jinja2.ext import Extension

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
# The choices are cookiecutter.json's lists: the prompts, these rules and the tests read the
# same list (a model family is a name there plus its conf/model/<name>.yaml).
CHOICES = {
    key: tuple(value)
    for key, value in json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text()).items()
    if isinstance(value, list) and not key.startswith("_")
}
MAX_LENGTH = {
    "project_name": 80,
    "project_slug": 64,
    "package_name": 64,
    "author": 100,
    "description": 200,
    "dvc_remote_url": 400,
}
REMOTE_SCHEMES = {"s3": "s3://", "gcs": "gs://", "azure": "azure://", "ssh": "ssh://"}
SLUG_PATTERN = re.compile(r"\A[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")
PACKAGE_PATTERN = re.compile(r"\A[a-z][a-z0-9_]*\Z")
# Import names that differ from the distribution names found in the shipped locks.
IMPORT_ALIASES = frozenset(
    ["sklearn", "yaml", "hydra", "antlr4", "_pytest", "attr", "dateutil", "google", "azure"]
)
PROJECT_ROOT_NAMES = frozenset(["conf", "data", "models", "metrics", "plots", "tests", "bench"])
LOCKS_GLOB = "{{cookiecutter.project_slug}}/.locks/*/uv.lock"
LOCKED_NAME = re.compile(r'^name = "([^"]+)"$', re.MULTILINE)
QUOTES = "\"'`"
PROJECT_DIR = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
# Read as text: a model file may hold Jinja (torch_mlp names the package), so not as YAML.
DATA_TASK = re.compile(r"^task: *(\w+) *$", re.MULTILINE)
MODEL_TASKS = re.compile(r"^_by_task_:\n((?:[ ]+\w+:.*\n)+)", re.MULTILINE)
# What baking needs beside cookiecutter, and the one command that installs each. The hook
# runs DVC and the data writer from the project's own locked environment, made with uv.
BAKE_REQUIREMENTS = {
    "git": "your system's package manager, e.g. apt-get install git",
    "uv": "python3 -m pip install uv",
}


def _character_problem(value: str) -> str | None:
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc":
            return f"control character U+{ord(char):04X}"
        if category == "Cf":
            return f"invisible or bidirectional formatting character U+{ord(char):04X}"
        if char in QUOTES:
            return f"quote character {char}"
        if char in "{}":
            return "Jinja brace { or }"
        if char == "\\":
            return "backslash"
    return None


def _path_problem(value: str) -> str | None:
    if value.startswith(("/", "~")) or re.match(r"\A[A-Za-z]:", value):
        return "an absolute path"
    if ".." in value:
        return "'..'"
    if "/" in value:
        return "a '/'"
    if value.startswith("."):
        return "a leading '.'"
    return None


def _text_rules(key: str, value: object) -> list[str]:
    if not isinstance(value, str):
        return [f"{key}: expected text, got {value!r}"]
    problems = []
    if not value.strip():
        problems.append(f"{key}: must not be empty. Fix: give a value.")
    if len(value) > MAX_LENGTH[key]:
        problems.append(
            f"{key}: {value[:24]!r}... has {len(value)} characters, over the limit of "
            f"{MAX_LENGTH[key]}. Fix: shorten it."
        )
    bad = _character_problem(value)
    if bad:
        problems.append(f"{key}: {value!r} contains a {bad}, which is not allowed. Fix: remove it.")
    return problems


def _path_rules(key: str, value: str, pattern: re.Pattern, shape: str, example: str) -> list[str]:
    problems = []
    where = _path_problem(value)
    if where:
        problems.append(
            f"{key}: {value!r} contains {where}; it names a directory inside the output "
            f"directory, so it must be a single plain name. Fix: use e.g. {example!r}."
        )
    elif not pattern.match(value):
        problems.append(f"{key}: {value!r} is not {shape}. Fix: use e.g. {example!r}.")
    return problems


def dependency_import_names() -> frozenset[str]:
    """Every package any shipped lock installs, as import names: `python -m` puts the project
    root first on sys.path, so a package of the same name would shadow it for DVC too."""
    names = set(IMPORT_ALIASES)
    for lock in TEMPLATE_DIR.glob(LOCKS_GLOB):
        names.update(
            name.replace("-", "_").replace(".", "_")
            for name in LOCKED_NAME.findall(lock.read_text(encoding="utf-8"))
        )
    return frozenset(names)


def _package_rules(value: str) -> list[str]:
    if keyword.iskeyword(value):
        return [f"package_name: {value!r} is a Python keyword. Fix: choose another name."]
    if value in sys.stdlib_module_names:
        return [f"package_name: {value!r} shadows the standard library module. Fix: rename it."]
    if value in dependency_import_names():
        return [f"package_name: {value!r} shadows a dependency of the project. Fix: rename it."]
    if value in PROJECT_ROOT_NAMES:
        return [f"package_name: {value!r} is a directory of the project layout. Fix: rename it."]
    return []


def _remote_url_rules(remote: str, url: str) -> list[str]:
    if not url:
        return []
    if any(char.isspace() for char in url):
        return [f"dvc_remote_url: {url!r} contains white space. Fix: remove it."]
    scheme = REMOTE_SCHEMES.get(remote)
    if scheme and not url.startswith(scheme):
        return [
            f"dvc_remote_url: {url!r} does not fit dvc_remote={remote!r}. "
            f"Fix: use a URL starting with {scheme!r}, or leave it empty."
        ]
    if not scheme and "://" in url:
        return [
            f"dvc_remote_url: {url!r} is a URL, but dvc_remote is 'local'. "
            "Fix: give a directory path, or pick the matching dvc_remote."
        ]
    return []


def dataset_task(dataset: str) -> str | None:
    found = DATA_TASK.search((PROJECT_DIR / "conf" / "data" / f"{dataset}.yaml").read_text())
    return found.group(1) if found else None


def model_tasks(model: str) -> list[str]:
    """The tasks a model family has a class for (its ``_by_task_`` keys)."""
    found = MODEL_TASKS.search((PROJECT_DIR / "conf" / "model" / f"{model}.yaml").read_text())
    return re.findall(r"^[ ]+(\w+):", found.group(1), re.MULTILINE) if found else []


def _task_rules(dataset: str, model: str) -> list[str]:
    task = dataset_task(dataset)
    if task is None or task in model_tasks(model):
        return []
    fitting = [name for name in CHOICES["model"] if task in model_tasks(name)]
    return [
        f"model: {model!r} has no class for {task}, the task of dataset={dataset!r}. "
        f"Fix: pick one of {', '.join(fitting)}."
    ]


def validate(answers: dict) -> list[str]:
    """Every rule ``answers`` break, each naming the key, the value and the fix."""
    problems = []
    for key, allowed in CHOICES.items():
        if answers.get(key) not in allowed:
            problems.append(f"{key}: {answers.get(key)!r} is not one of {', '.join(allowed)}.")
    for key in MAX_LENGTH:
        value = answers.get(key, "")
        if key == "dvc_remote_url" and value == "":
            continue
        problems.extend(_text_rules(key, value))
    if problems:
        return problems
    slug_shape = "lowercase letters and digits in words joined by single hyphens"
    problems.extend(
        _path_rules("project_slug", answers["project_slug"], SLUG_PATTERN, slug_shape, "my-ml")
    )
    package_shape = "lowercase letters, digits and underscores, starting with a letter"
    problems.extend(
        _path_rules(
            "package_name", answers["package_name"], PACKAGE_PATTERN, package_shape, "my_ml"
        )
    )
    if not problems:
        problems.extend(_package_rules(answers["package_name"]))
    problems.extend(_remote_url_rules(answers["dvc_remote"], answers["dvc_remote_url"]))
    problems.extend(_task_rules(answers["dataset"], answers["model"]))
    return problems


def missing_bake_requirements() -> list[str]:
    """The programs baking needs that are not on PATH (``$UV`` counts for uv), each with the
    command that installs it."""
    found = {"uv": os.environ.get("UV")}
    return [
        f"{program} (install it: {fix})"
        for program, fix in BAKE_REQUIREMENTS.items()
        if not (found.get(program) or shutil.which(program))
    ]


def report(problems: list[str]) -> str:
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return f"The answers were refused; nothing was written.\n{lines}"


def check_answers(answers: dict) -> str:
    """Jinja filter: raise (so cookiecutter stops before writing anything) on any bad answer."""
    from cookiecutter.exceptions import FailedHookException

    problems = validate(dict(answers))
    missing = missing_bake_requirements()
    if missing:
        problems.append(f"baking needs {'; '.join(missing)}.")
    if problems:
        raise FailedHookException(report(problems))
    return "yes"


def template_hooks_dir() -> str:
    """Absolute path of this directory: hooks run elsewhere and import their helpers from it."""
    return os.path.dirname(os.path.abspath(__file__))


class AnswerRulesExtension(Extension):
    """Registers what cookiecutter.json calls: ``check_answers`` and ``template_hooks_dir``."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["check_answers"] = check_answers
        environment.globals["template_hooks_dir"] = template_hooks_dir
        # Hooks receive the answers through `tojson`; keeping cookiecutter's key order lets
        # the post-generation hook write .cruft.json exactly as cruft will.
        environment.policies["json.dumps_kwargs"] = {"sort_keys": False}
