"""This project's environment is its lock: no drift, a package shadowing one on PYTHONPATH
never reaches a stage, and the fingerprint a rebuild records names the CPU and BLAS kernel."""

import os
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT, machinery

environment = machinery("runtime.environment")
launcher = machinery("runtime.launcher")


def test_drift_is_a_diff_against_the_lock():
    installed = environment.installed_versions()
    assert environment.drift(PROJECT_ROOT, installed=installed) == []
    changed = {**installed, "numpy": "1.0.0", "left-pad": "9"}
    del changed["scipy"]
    lines = environment.drift(PROJECT_ROOT, installed=changed, python="2.7")
    locked = environment.locked_versions(PROJECT_ROOT / "requirements.lock")
    assert lines[:2] == [
        f"- python {environment.locked_python(PROJECT_ROOT / '.python-version')}",
        "+ python 2.7",
    ]
    assert f"- numpy=={locked['numpy']}" in lines and "+ numpy==1.0.0" in lines
    assert f"- scipy=={locked['scipy']}" in lines
    assert "+ left-pad==9" in lines


def test_a_shadowing_package_on_pythonpath_is_dropped_or_reported(tmp_path):
    """Python imports the first distribution of a name on its path. A stage never sees one on
    PYTHONPATH (the launcher drops it); when the environment is kept as it is, the drift check
    reports the shadowing version, not the locked one behind it."""

    shadow = tmp_path / "shadow"
    info = shadow / "threadpoolctl-9.9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: threadpoolctl\nVersion: 9.9.9\n")
    (shadow / "threadpoolctl.py").write_text("raise ImportError('the shadow was imported')\n")
    command = [sys.executable, "-m", "reproml.tools", "env", "--check"]
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    env.pop(launcher.OPT_OUT_VARIABLE, None)
    dropped = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    env[launcher.OPT_OUT_VARIABLE] = "as-is"
    kept = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert kept.returncode == 1
    assert "+ threadpoolctl==9.9.9" in kept.stdout


def test_the_fingerprint_names_the_cpu_level_and_the_blas_kernel():
    import platform

    fingerprint = environment.fingerprint(PROJECT_ROOT)
    assert set(fingerprint["cpu"]) == {"vendor", "isa"}
    assert all(len(line.split()) == 3 for line in fingerprint["blas"])  # api version kernel
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("ISA levels are x86-64's")
    v2 = "cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3"
    v3 = v2 + " avx avx2 bmi1 bmi2 f16c fma abm movbe xsave"
    for flags, level in [("sse2", "x86-64-v1"), (v2, "x86-64-v2"), (v3, "x86-64-v3")]:
        info = environment.cpu_info(f"vendor_id\t: GenuineIntel\nflags\t\t: {flags}\n")
        assert info == {"vendor": "GenuineIntel", "isa": level}
