"""Show generated tables in README.md: each block between `<!-- table:NAME -->` and
`<!-- /table:NAME -->` is replaced by reports/tables/NAME.md, verbatim.

    geodistill readme --tables reports/tables --readme README.md     # after `dvc repro`

The README's numbers are thus copied, never typed; tests/test_reports.py fails when a block
differs from its generated table.
"""
from __future__ import annotations

import re
from pathlib import Path

from geodistill.io import write_text

BLOCK = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table:(?P=name) -->)", re.S)


def blocks(text: str) -> dict[str, str]:
    """NAME -> the block's current body."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def fill(text: str, tables: Path) -> str:
    """`text` with every block's body replaced by its table file (a missing one is an error)."""
    def body(m: re.Match) -> str:
        path = Path(tables) / f"{m['name']}.md"
        if not path.is_file():
            raise FileNotFoundError(f"README block table:{m['name']} needs {path} (run `dvc repro tables`)")
        return f"{m.group(1)}{path.read_text().rstrip()}\n{m.group(4)}"
    return BLOCK.sub(body, text)


def update_readme(readme: Path, tables: Path) -> list[str]:
    """Rewrite the README's table blocks in place (atomically); returns the block names."""
    text = Path(readme).read_text()
    write_text(readme, fill(text, tables))
    return list(blocks(text))
