"""The user-facing documents: every file, command, make target and anchor that README.md and docs/*.md name
exists; CITATION.cff and LICENSE are valid; no text points to the project's private specification.

**Which strings are repository paths.** In README.md and docs/*.md, a path is taken from two places:

* inline code and fenced code blocks: every whitespace-separated word (quotes, brackets, commas and
  a trailing ``.:;`` stripped) that contains a ``/`` or names a top-level file (``process.py``,
  ``Makefile``), and
* the target of every Markdown link or image (``[text](target)``), resolved against the folder of the
  document (``docs/`` for the pages there), web links and pure ``#anchor`` links aside.

A code word counts as a repository path only when its first component is a top-level entry of the
repository (a folder such as ``model``, ``docs``, ``bench``, ``training`` or a file such as
``Dockerfile``) and is not one of the folders that commands create and git ignores (``data/``,
``runs/``, ``out/``, ... from .gitignore, and ``export/``), so example outputs (``OUT/images/...``,
``/input``, ``runs/bench/cpu.json``, ``data/demo-output/comparison.png``) are never flagged. A word is a
placeholder, not a path, when it contains ``<``, ``>``, ``{``, ``}``, ``*``, ``...``, ``…``, ``$`` or
``=``, or when one of its components is written in capitals only (``ID``, ``IN``, ``OUT``, ``DIR``,
``RUN_A``: a component with a file extension such as ``MODEL_CARD.md`` is a real name). Link targets are
always checked.

**Commands.** ``python -m PACKAGE.MODULE`` (and ``torchrun ... -m PACKAGE``) in code must name a module
file of the repository (``PACKAGE/MODULE.py``, or a folder with ``__main__.py``) when PACKAGE is a
top-level folder; ``make TARGET`` in code must be a target of the Makefile. A link ``page.md#anchor``
must name a heading of that page (GitHub's anchors).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GENERATED = {"export", ".git", ".venv"}  # folders commands create (with those of .gitignore below)
PLACEHOLDER_MARKS = ("<", ">", "{", "}", "*", "...", "…", "$", "=")
SPEC_REFERENCE = re.compile(r"\bSPEC(?:\s+section)?\s+\d|\bSPEC\.md\b")
SHARED_REFERENCE = re.compile(r"\.\./shared\b|\bshared/(?:SPEC|paper)\b")
FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)
INLINE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
MODULE_COMMAND = re.compile(r"(?:^|\s)-m\s+([A-Za-z_][\w.]*)")
MAKE_COMMAND = re.compile(r"(?:^|[\s;&|(])make\s+([a-z][\w-]*)")


def ignored_top_level() -> set[str]:
    """Top-level names that .gitignore lists (``/data/``, ``.venv/``, ...): outputs, never documented files."""
    names = set(GENERATED)
    gitignore = ROOT / ".gitignore"
    if gitignore.is_file():
        for line in gitignore.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "*" not in line:
                parts = [p for p in line.strip("/").split("/") if p]
                if len(parts) == 1:
                    names.add(parts[0])
    return names


TOP_LEVEL = {p.name for p in ROOT.iterdir()} - ignored_top_level()
TOP_LEVEL_FILES = {name for name in TOP_LEVEL if (ROOT / name).is_file()}
PACKAGES = {name for name in TOP_LEVEL if (ROOT / name / "__init__.py").is_file()}


def code_of(text: str) -> list[str]:
    """The contents of fenced code blocks and inline code spans of a Markdown text."""
    blocks = [m.group(2) for m in FENCE.finditer(text)]
    rest = FENCE.sub("", text)
    return blocks + [m.group(2) for m in INLINE.finditer(rest)]


def without_code(text: str) -> str:
    """The Markdown text without its fenced blocks and inline code (where links live)."""
    return INLINE.sub("", FENCE.sub("", text))


def is_placeholder(word: str) -> bool:
    """A word that stands for a path rather than naming one (see the module's docstring)."""
    if any(mark in word for mark in PLACEHOLDER_MARKS):
        return True
    return any(re.fullmatch(r"[A-Z][A-Z0-9_]*", part) for part in word.strip("/").split("/"))


def code_paths(text: str) -> set[str]:
    """Repository paths named in the code of a document."""
    found = set()
    for code in code_of(text):
        for word in re.split(r"[\s\"'`,;()\[\]|]+", code):
            word = word.rstrip(".:;")
            if not word or is_placeholder(word) or word.startswith(("/", "http:", "https:", "-")):
                continue
            first = word.split("/")[0]
            if ("/" in word and first in TOP_LEVEL) or word in TOP_LEVEL_FILES:
                found.add(word)
    return found


def link_targets(document: Path) -> list[tuple[str, str]]:
    """(path relative to the repository, anchor) of every local link and image of a document."""
    targets = []
    for match in LINK.finditer(without_code(document.read_text())):
        target = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve()
        targets.append((str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved), anchor))
    return targets


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page (lower case, punctuation dropped, spaces to
    hyphens, repeated headings numbered)."""
    seen: dict[str, int] = {}
    result = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower().replace("`", "")).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def module_exists(module: str) -> bool:
    """``python -m module`` would find a file of this repository."""
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.M))


def relative(document: Path) -> str:
    return str(document.relative_to(ROOT))


def test_the_rule_tells_paths_from_placeholders():
    """The examples of the module's docstring."""
    text = ("`model/errors.py`, `docs/usage.md#x`, `python -m bench.quality --out runs/quality`, `OUT/images/t1`, "
            "`IN/<ID>/64mT/<ID>_T1.nii.gz`, `/input`, `data/demo-output/comparison.png`, `weights/MODEL_CARD.md`, "
            "`test/test_<module>.py`, `RUN_DIR/data-cache`, `process.py`, `training/configs/...toml`")
    assert code_paths(text) == {"model/errors.py", "docs/usage.md#x", "weights/MODEL_CARD.md", "process.py"}


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_every_path_in_code_exists(document):
    missing = sorted(word for word in code_paths(document.read_text())
                     if not (ROOT / word.split("#")[0]).exists())
    assert not missing, f"{relative(document)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_every_link_and_anchor_exists(document):
    problems = []
    for path, anchor in link_targets(document):
        target = ROOT / path
        if not target.exists():
            problems.append(f"{path}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            problems.append(f"{path}#{anchor}: no such heading")
    assert not problems, f"{relative(document)}: {problems}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_every_python_module_and_make_target_exists(document):
    code = "\n".join(code_of(document.read_text()))
    modules = {m for m in MODULE_COMMAND.findall(code) if m.split(".")[0] in PACKAGES}
    targets = set(MAKE_COMMAND.findall(code))
    missing = sorted(m for m in modules if not module_exists(m))
    unknown = sorted(targets - makefile_targets())
    assert not missing and not unknown, (f"{relative(document)}: modules without a file {missing}, "
                                         f"make targets not in the Makefile {unknown}")


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_no_document_points_to_the_private_specification(document):
    text = document.read_text()
    assert not SPEC_REFERENCE.search(text), f"{relative(document)}: {SPEC_REFERENCE.findall(text)}"
    assert not SHARED_REFERENCE.search(text), f"{relative(document)} points outside the repository (../shared)"


def tracked_text_files() -> list[Path]:
    """The repository's own source and text files (git's list where there is one, else a walk)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.split()
        files = [ROOT / name for name in listed]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in ROOT.rglob("*") if not set(p.relative_to(ROOT).parts) & ignored_top_level()]
    suffixes = {".py", ".md", ".sh", ".toml", ".txt", ".cff", ".json", ".cfg", ".ini", ".yml", ".yaml"}
    return [p for p in files if p.is_file() and (p.suffix in suffixes or p.name in ("Dockerfile", "Makefile"))
            and p != Path(__file__).resolve() and p.stat().st_size < 2_000_000]


def test_no_file_points_to_the_private_specification():
    """Nothing in the repository says "SPEC <number>" or points to ../shared: the method is in docs/method.md."""
    offenders = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if SPEC_REFERENCE.search(line) or SHARED_REFERENCE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offenders, f"{len(offenders)} references to the private specification: {offenders}"


def test_the_readme_is_a_short_guide_with_the_quick_start():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 210
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].strip() for line in code_of(quick_start)[0].splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    for needed in ("pip install .", "ulf-enhance", "--index-url https://download.pytorch.org/whl/cpu",
                   "docker run --rm --gpus all", "/input", "/output", "## Exit status", "## Licence"):
        assert needed in text, needed


def test_no_stale_statements_in_the_documents():
    """The `cpu` preset is the bridge at K = 100 then 25, 10, 1 (not 400, 225, 100, 25); no development
    narrative or issue numbers in user-facing text."""
    narrative = re.compile(r"\b(?:phase \d|this session|previous session|earlier versions?|issue \d+|issue #\d+)\b", re.I)
    problems = []
    for document in DOCUMENTS:
        text = document.read_text()
        if "400, 225, 100, 25" in text or "quality_time.png" in text:
            problems.append(f"{relative(document)}: the old `cpu` preset or its curve")
        problems += [f"{relative(document)}: {m.group(0)!r}" for m in narrative.finditer(text)]
    assert not problems, problems


def test_citation_cff_is_valid():
    """``cffconvert --validate`` (schema 1.2.0), and what it must say."""
    result = subprocess.run([sys.executable, "-c", "from cffconvert.cli.cli import cli; cli()", "--validate",
                             "-i", str(ROOT / "CITATION.cff")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid according to schema version 1.2.0" in result.stdout + result.stderr
    from ruamel.yaml import YAML

    citation = YAML(typ="safe").load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["title"] == "ulf-enhance: bridged denoising diffusion for ultra-low-field MRI enhancement"
    assert citation["version"] == "0.1.0" and citation["license"] == "Apache-2.0"
    paper = citation["preferred-citation"]
    assert paper["title"] == "Bridged Denoising Diffusion in Ultra-Low Field MRI Enhancement Challenge"
    assert [a["family-names"] for a in paper["authors"]] == ["Imre", "Rao", "Salehi", "Staring", "Ilicak"]


def test_the_licence_is_the_apache_2_0_text():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "Copyright 2026 The ulf-enhance authors" in text
