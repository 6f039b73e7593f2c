"""docs/paper-reference.md is where the code, presets and docs find the paper's facts: every
citation of it names a section that exists, and nothing cites a file outside the repository.

    .venv/bin/pytest -q tests/test_paper_reference.py
"""
from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

REFERENCE = REPO / "docs" / "paper-reference.md"
CITATION = re.compile(r"paper-reference\.md#([A-Za-z0-9_-]+)")
TEXT = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg"}
SKIP = {".git", ".venv", "data", ".dvc", "__pycache__"}
OUTSIDE = ("REFERENCE" + ".md", "PROBE" + "-NOTES", "DATA" + "-PINS", "../" + "shared", "/wo" + "rk/")


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def repository_texts() -> list[Path]:
    return [p for p in REPO.rglob("*") if p.suffix in TEXT and p.is_file()
            and not SKIP & set(p.relative_to(REPO).parts) and not p.parent.name.endswith(".egg-info")]


def test_every_citation_names_a_section_of_the_paper_reference():
    sections = {anchor(m) for m in re.findall(r"^#{2,3} (.+)$", REFERENCE.read_text(), re.M)}
    assert {"vigor", "geodistill", "published-numbers", "data-sources-and-pins", "calibration-probe"} <= sections
    cited = {(p.relative_to(REPO).as_posix(), a) for p in repository_texts() for a in CITATION.findall(p.read_text())}
    assert len(cited) > 20
    assert [f"{path}: #{a}" for path, a in sorted(cited) if a not in sections] == []


def test_nothing_cites_a_file_outside_the_repository():
    found = [f"{p.relative_to(REPO)}: {word}" for p in repository_texts() for word in OUTSIDE if word in p.read_text()]
    assert found == []
