"""What the generated GitLab pipeline's caches save, measured with the local runner.

Bakes a project with two signed releases (ci=gitlab, a local DVC remote, a bare origin),
then runs each job under gitlab-ci-local (shell executor, a fresh build directory per job),
twice in the same checkout: cold (no GitLab cache yet: uv downloads every package, DVC pulls
every object) and warm (the caches the first run saved, keyed on uv.lock and dvc.lock, are
restored). The scheduled field rebuild's warm time is what one run costs in runner minutes
on the demo project.

    python bench/ci_cache.py
"""

import re
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TEMPLATE / "tests")]

import servers  # noqa: E402
from conftest import run  # noqa: E402
from test_ci import GITLAB_CI_LOCAL, gitlab_checkout, two_releases  # noqa: E402

JOBS = ("consistency", "reproduce", "field-rebuild")


def cache_size(checkout: Path) -> int:
    """Bytes of what gitlab-ci-local keeps between runs (GitLab's `cache:`)."""
    folder = checkout / ".gitlab-ci-local" / "cache"
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def run_job(releases: dict, runner: Path, checkout: Path, job: str) -> tuple[float, bool]:
    """Seconds the job took, and whether it restored a cache (gitlab-ci-local says so)."""
    variables = {"DVC_REMOTE_IN_CI": "true", "REPROML_SIGNING_KEY": str(releases["key"])}
    if job == "field-rebuild":
        variables["CI_PIPELINE_SOURCE"] = "schedule"
    command = [
        str(runner),
        "--force-shell-executor",
        "--shell-isolation",
        "--no-color",
        *[f"--variable={key}={value}" for key, value in variables.items()],
        job,
    ]
    env = {key: value for key, value in releases["env"].items() if key != "UV_CACHE_DIR"}
    start = time.perf_counter()
    done = run(command, cwd=checkout, check=False, env=env, timeout=3600)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not re.search(rf"PASS +{job}", done.stdout):
        raise SystemExit(f"{job} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return seconds, "imported cache" in done.stdout


def main() -> int:
    runner = servers.npm_tool(GITLAB_CI_LOCAL, "gitlab-ci-local")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "project").mkdir()
        releases = two_releases(root / "project", "gitlab")
        rows = []
        for job in JOBS:
            checkout = gitlab_checkout(releases, root / f"checkout-{job}").path
            cold, restored_cold = run_job(releases, runner, checkout, job)
            kept = cache_size(checkout)
            warm, restored_warm = run_job(releases, runner, checkout, job)
            assert not restored_cold and restored_warm, "the warm run must restore the cache"
            rows.append((job, cold, warm, kept))
    print("GitLab jobs under gitlab-ci-local, the same checkout twice (cold, then warm caches):")
    for job, cold, warm, kept in rows:
        print(
            f"  {job:<15} cold {cold:6.1f} s   warm {warm:6.1f} s   cold/warm {cold / warm:4.2f}"
            f"   cache kept {kept / 2**20:5.0f} MB"
        )
    print(
        "  (cold downloads the cached megabytes again: from PyPI for uv, from the DVC remote "
        "for .dvc/cache; the ratio is that download's share on this machine's network)"
    )
    field_warm = rows[-1][2]
    print(
        f"field rebuild of 2 releases, warm: {field_warm:.0f} s "
        f"(~{field_warm / 60:.1f} runner minutes a week on the demo project)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
