"""The package as installed from a wheel, not from the source tree: it must carry what `jaxrl` reads at run
time (the recipes)."""

import functools
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# What the wheel is built from: the packages and the files pyproject.toml names.
SOURCES = ("pyproject.toml", "README.md", "jaxrl", "envs_mjx", "configs")


def test_installed_wheel_lists_its_own_recipes(tmp_path):
    # A copy of the sources, so that the build's scratch directories stay out of the repo.
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    run = functools.partial(subprocess.run, check=True, capture_output=True, text=True, timeout=300)
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist")])
    (wheel,) = (tmp_path / "dist").glob("jaxrl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "jaxrl/recipes/cartpole_balance_ppo.yaml" in archive.namelist()

    # jax and the other dependencies come from this machine; jaxrl from the venv, which precedes the
    # editable install of the source tree on the path.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)])
    run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", wheel])
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    listed = run([venv / "bin" / "jaxrl", "list"], cwd=tmp_path, env=env).stdout

    (heading,) = [line for line in listed.splitlines() if line.startswith("recipes")]
    recipes = Path(heading.split("(", 1)[1].rstrip(")"))
    assert recipes.is_relative_to(venv.resolve()), heading  # the installed package, not the source tree
    assert "cartpole_balance_ppo.yaml" in listed and "grasp_lift_cube_bc.yaml" in listed
    assert (recipes / "cartpole_balance_ppo.yaml").is_file()
    assert not (recipes / "cartpole_balance_ppo.yaml").is_symlink()
