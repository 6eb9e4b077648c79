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
    assert modules <= {"model.layouts", "model.errors", "model.nifti_checks"}
    built = (ROOT / "evaluation" / "build.sh").read_text()
    assert all(f"model/{module.split('.')[1]}.py" in built for module in modules)


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
