"""scripts/wheelhouse.sh: build a wheelhouse with `pip download --only-binary=:all:` for a
target Python, then install from it with no index, genlab included (a local wheel stands in
for the registry; setuptools comes from the package index, skipped without one)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts/wheelhouse.sh"


def _probe_wheel(tmp_path) -> str:
    """A tiny pure-Python wheel built here, the 'registry' of this test."""
    src = tmp_path / "probe"
    (src / "genlab_probe").mkdir(parents=True)
    (src / "genlab_probe/__init__.py").write_text("VALUE = 42\n")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "genlab-probe"\nversion = "1.0"\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "index"), str(src)],
                   check=True, capture_output=True)
    # setuptools for genlab's own editable install (the script adds it to every wheelhouse)
    got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                          "--only-binary=:all:", "-d", str(tmp_path / "index"),
                          "setuptools>=70"], capture_output=True, text=True, timeout=120)
    if got.returncode:
        pytest.skip(f"no package index to fetch a setuptools wheel from: {got.stderr[-300:]}")
    return str(tmp_path / "index")


@pytest.mark.slow
def test_build_then_install_offline(tmp_path):
    index = _probe_wheel(tmp_path)
    lock = tmp_path / "requirements.lock"
    lock.write_text("genlab-probe==1.0\n")
    env = {**os.environ, "PIP": f"{sys.executable} -m pip", "LOCK": str(lock),
           "EXTRA": "setuptools>=70", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": index,
           "PYTHON": sys.executable}
    house, venv = tmp_path / "house", tmp_path / "venv"
    out = subprocess.run(["bash", str(SCRIPT), "build", str(house), "3.11"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 wheels in" in out.stdout and (house / "requirements.lock").exists()
    env.pop("PIP_FIND_LINKS")  # install sees only the wheelhouse
    out = subprocess.run(["bash", str(SCRIPT), "install", str(house), str(venv)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    probe = subprocess.run([str(venv / "bin/python"), "-c",
                            "import genlab_probe, genlab; print(genlab_probe.VALUE)"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "42", probe.stderr


def test_install_without_a_built_wheelhouse_says_so(tmp_path):
    out = subprocess.run(["bash", str(SCRIPT), "install", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "build it with scripts/wheelhouse.sh build" in out.stderr
