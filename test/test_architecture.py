"""The floors of the house (README, "How the code is laid out"): no package imports one above it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "evaluation", "simulation", "bench", "training", "demo")
MAY_IMPORT = {  # the project's packages each package may import (besides itself)
    "model": set(),
    "evaluation": {"model"},
    "simulation": {"model"},
    "training": {"model", "simulation"},
    "bench": {"model", "evaluation", "simulation"},
    "demo": {"model", "evaluation", "simulation"},
}


def imported_packages(path: Path) -> set[str]:
    """The project's packages that a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_one_above_it(package):
    wrong = {f"{path.relative_to(ROOT)} imports {name}"
             for path in (ROOT / package).rglob("*.py")
             for name in imported_packages(path) - MAY_IMPORT[package] - {package}}
    assert not wrong, sorted(wrong)


def test_evaluation_takes_only_the_layouts_from_the_model():
    """evaluation/ is the metric: of the inference package it knows only where the files are, the errors the
    layouts raise, and what SimpleITK does not check in a NIfTI file (NaN voxels read as zeros: a prediction
    with NaN must not be scored as zeros). evaluation/build.sh copies exactly these modules into its image."""
    modules = set()
    for path in (ROOT / "evaluation").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("model"):
                modules.add(node.module)
    assert modules <= {"model.volumes.layouts", "model.errors", "model.volumes.nifti"}
    built = (ROOT / "evaluation" / "build.sh").read_text()
    assert all(module.replace(".", "/") + ".py" in built for module in modules)
    assert all(init in built for init in ("model/__init__.py", "model/volumes/__init__.py"))


def test_evalutils_is_only_imported_where_submissions_are_validated():
    """evalutils (pinned in evaluation/requirements.txt) is the evaluation container's: the inference image never
    needs it, and of evaluation/ only the validation module imports it directly."""
    importers = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                if any(name.split(".")[0] == "evalutils" for name in names):
                    importers.add(str(path.relative_to(ROOT)))
    assert importers == {"evaluation/validation.py"}


# --- Inside the inference package: rooms by concern, on floors ------------------------------------------------------

MODEL = ROOT / "model"
# The rooms of model/, bottom floor first: a room imports only itself and rooms before it (docs/architecture.md).
FLOORS = ("errors", "method", "networks", "volumes", "config", "execution", "weights", "pipeline", "cli")
MAX_LINES = 400


def room_of(module: str) -> str:
    """'execution.engine' -> 'execution'; '__main__' -> 'cli' (it runs the command line)."""
    first = module.split(".")[0]
    return "cli" if first == "__main__" else first


def model_imports(path: Path) -> set[str]:
    """The model modules a file of model/ imports, as dotted paths inside the package ('execution.plan')."""
    here = path.relative_to(MODEL).with_suffix("").parts[:-1]  # its package, inside model/
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[:len(here) - (node.level - 1)])
            if node.module:
                found.add(".".join(base + node.module.split(".")))
            else:  # from . import sharding: a module, or a name of the package's __init__ (which imports nothing)
                found |= {".".join(base + [alias.name]) for alias in node.names
                          if (MODEL.joinpath(*base, alias.name + ".py").is_file() or MODEL.joinpath(*base, alias.name).is_dir())}
    return {name for name in found if name}


def test_the_package_imports_itself_relatively():
    """So that it can be installed under another name (pyproject.toml maps ulf_enhance onto model/)."""
    absolute = {f"{path.relative_to(ROOT)} imports {name}" for path in MODEL.rglob("*.py")
                for name in imported_packages(path) if name == "model"}
    assert not absolute, sorted(absolute)


def test_rooms_import_only_rooms_below_them():
    rooms = {p.name for p in MODEL.iterdir() if p.is_dir() and (p / "__init__.py").exists()} | {"errors"}
    assert rooms == set(FLOORS), "a new room of model/ needs its floor in FLOORS and docs/architecture.md"
    wrong = set()
    for path in MODEL.rglob("*.py"):
        module = ".".join(path.relative_to(MODEL).with_suffix("").parts)
        if module == "__init__":
            continue
        mine = FLOORS.index(room_of(module))
        for target in model_imports(path):
            if FLOORS.index(room_of(target)) > mine:
                wrong.add(f"{module} ({room_of(module)}) imports {target} ({room_of(target)})")
    assert not wrong, sorted(wrong)


def test_no_file_of_the_package_is_longer_than_one_sitting():
    long = {str(p.relative_to(ROOT)): n for p in MODEL.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


@pytest.mark.parametrize("fact", [
    "(128, 128, 32)",  # the window: model.networks.WINDOW
    '("diffusion", "bridge")',  # the networks' names: model.networks.NETWORK_NAMES
    "DEFAULT_TIMESTEPS = ",  # T: model.method.schedule
    "PAPER_BRIDGE_TIMESTEP, PAPER_REFINEMENTS = ",  # K and J of the paper: model.config.settings
    "--bridge-timestep must be in",  # the K check: AlgorithmSettings.check_against
    "PRECISIONS = ",  # the precision vocabulary of inference and training: model.config.settings
])
def test_each_fact_is_written_once(fact):
    places = [str(p.relative_to(ROOT)) for p in (*MODEL.rglob("*.py"), *(ROOT / "training").rglob("*.py"))
              if fact in p.read_text()]
    assert len(places) == 1, (fact, places)
