"""The installed package, run as ``python -m minialexnet`` from folders that could shadow it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """This interpreter in ``cwd`` without PYTHONPATH: only what is installed can be imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_python_m_minialexnet_runs_from_the_folder_holding_a_clone_named_minialexnet(tmp_path):
    # The reported failure: `git clone ... minialexnet && python -m minialexnet tour` from the
    # clone's parent. The current folder comes first on sys.path, so the clone (no __init__.py)
    # is a namespace package "minialexnet"; with an editable install that works through an
    # import finder (tried after the path finder), minialexnet.data resolved to the clone's
    # top-level data/ folder: "cannot import name 'DATASETS' from 'minialexnet.data'".
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run_python(["-c", "import minialexnet; print(minialexnet.__file__)"], elsewhere)
    if where.returncode != 0:
        pytest.skip("minialexnet is not installed in this interpreter (pip install -e .)")
    clone = tmp_path / "minialexnet"  # the part of a clone's layout that shadowed the package
    (clone / "data").mkdir(parents=True)
    (clone / "data" / "fetch.py").write_text("")
    (clone / "README.md").write_text("")
    result = run_python(["-m", "minialexnet", "summary", "--variant", "mini"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "conv layers:" in result.stdout and "463,562" in result.stdout


# The package served the way setuptools' finder-based editable install serves it: by a finder
# on sys.meta_path after the path finder, and not through a sys.path entry.
FINDER_INSTALL = """
import runpy, sys
from importlib.machinery import PathFinder
from pathlib import Path

PACKAGE = Path(sys.argv[1])
sys.path = [p for p in sys.path if Path(p or ".").resolve() != PACKAGE.parent]

class EditableFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname == "minialexnet" or fullname.startswith("minialexnet."):
            return PathFinder.find_spec(fullname, [str(PACKAGE.parent), str(PACKAGE)])
        return None

sys.meta_path.append(EditableFinder)
sys.argv = ["minialexnet", *sys.argv[2:]]
runpy.run_module("minialexnet", run_name="__main__", alter_sys=True)
"""


def test_a_folder_hiding_an_older_finder_based_install_is_named_in_one_line(tmp_path):
    # an install made before setup.cfg's package_dir: the clone still wins, and python -m
    # says what happened instead of "cannot import name 'DATASETS' from 'minialexnet.data'"
    import minialexnet

    (tmp_path / "minialexnet" / "data").mkdir(parents=True)
    package = Path(minialexnet.__file__).parent
    result = run_python(["-c", FINDER_INSTALL, str(package), "summary"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"the folder {tmp_path / 'minialexnet'} hides the installed package" in result.stderr
