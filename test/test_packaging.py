"""The installable package (pyproject.toml): `pip install .` into a fresh virtual environment gives `ulf_enhance`
(the folder model/ under a name that says what it is), the `ulf-enhance` command with the shipped weights inside
the package, and `--version`; the pins agree with requirements.txt."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement_pins(path: Path) -> list[str]:
    """The ``name==version`` lines of a requirements file, comments and includes left out."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def test_the_package_pins_what_requirements_txt_pins():
    assert sorted(PYPROJECT["project"]["dependencies"]) == sorted(requirement_pins(ROOT / "requirements.txt"))


def test_every_room_of_model_is_a_package_of_the_distribution():
    rooms = {p.name for p in (ROOT / "model").iterdir() if (p / "__init__.py").is_file()}
    packages = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert {f"ulf_enhance.{room}" for room in rooms} | {"ulf_enhance", "ulf_enhance.shipped_weights"} == packages


def test_the_version_is_written_once():
    from model import __version__

    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ulf_enhance.__version__"}
    assert __version__.count(".") == 2


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with `pip install .` of this checkout. Its dependencies (the pinned torch,
    MONAI, ... of the test environment) are made visible through a .pth file rather than installed again (no
    network, seconds instead of minutes); the package, its command and its weights are its own."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = venv.parent / "source"  # what the distribution is built from, copied: the build writes beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("model", "weights"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                             "--no-build-isolation", str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return venv


def test_the_installed_command_prints_its_version_and_the_weights_it_carries(installed, tmp_path):
    from model import __version__

    result = subprocess.run([str(installed / "bin" / "ulf-enhance"), "--version"], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"ulf-enhance {__version__}" and lines[1].startswith("revision: ")
    weights = Path(lines[2].removeprefix("weights: "))
    assert weights.parent.name == "ulf_enhance" and installed in weights.parents  # inside the installed package
    shipped = json.loads((ROOT / "weights" / "manifest.json").read_text())["networks"]
    assert sorted(lines[3:]) == sorted(f"  {name}: sha256 {entry['sha256']}" for name, entry in shipped.items())


def test_the_installed_command_enhances_a_case_as_process_py_does(installed, tmp_path):
    """The repository's Grand Challenge test case, `--preset cpu` with the shipped weights, one thread: the
    installed command and process.py write the same bytes."""
    case = ROOT / "test" / "input" / "interf0"
    outputs = {}
    for name, command in (("installed", [str(installed / "bin" / "ulf-enhance")]),
                          ("checkout", [sys.executable, str(ROOT / "process.py")])):
        result = subprocess.run([*command, "-i", str(case), "-o", str(tmp_path / name), "--preset", "cpu",
                                 "--threads", "1", "--precision", "float32", "--no-progress"],
                                capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = {p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*.mha")}
    assert len(outputs["installed"]) == 3 and outputs["installed"] == outputs["checkout"]
    image = sitk.ReadImage(str(next((tmp_path / "installed").rglob("*.mha"))))
    assert image.GetSize() == sitk.ReadImage(str(next(case.rglob("*.mha")))).GetSize()
