"""The source files a stage runs: the import closure of its module in the project's packages
(the stage modules of stages/ and the library, geodistill).

    python -m geodistill.codedeps "python -m stages.index"          # the code deps of a dvc.yaml cmd
    python -m geodistill.codedeps "python -m stages.train_baseline" --skip geodistill.models.ccvpe

    from geodistill.codedeps import closure, stage_entry
    closure(stage_entry("python -m stages.index --config params.yaml"))   # [.../geodistill/__init__.py, ...]

dvc.yaml lists these files under each stage's `deps`, so an edit reruns exactly the stages that
run the edited code; tests/test_codedeps.py recomputes them for every stage and fails on a file
a stage misses. Found statically with `ast`:
- a stage's entry is its module (`python -m stages.index` -> stages.index), counted whole;
- an entry `module:function` reaches the module's top-level imports, the imports inside the
  function, and those of the module's functions it names (helpers, decorators); the file
  holding the function is not counted;
- an imported module counts whole: every import in it, at the top or inside a function
  (`from geodistill.x import y` in a function body too), and its packages' `__init__.py`;
- a data file beside a module (totals.yaml, sources.yaml, published.yaml) counts when the
  module's code names it in a string.
`skip` leaves modules out that a stage never runs although a shared module imports them (the
model of another method: models/localizer.py imports both models/g2s.py and models/ccvpe.py).
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import shlex
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGES = ("geodistill", "stages")       # the library and the stage modules (a top-level folder)


def closure(entry: str, skip: frozenset[str] | set[str] = frozenset()) -> list[Path]:
    """Sorted files (absolute) of the package that `entry` ("pkg.module" or "pkg.module:function")
    runs, data files included."""
    module, _, function = entry.partition(":")
    if module_file(module) is None:
        raise ValueError(f"{entry}: no module {module} in {', '.join(PACKAGES)}")
    todo = _parents(module)[:-1]                     # the packages above the entry run on import
    files: set[Path] = set()
    if function:
        nodes = _function_nodes(module, function)
        todo += _imports(module, *nodes)
        files |= _data_files(module, nodes)
    else:
        todo.append(module)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name in skip or module_file(name) is None:
            continue
        seen.add(name)
        tree = _tree(name)
        files |= {module_file(name)} | _data_files(name, [tree])
        todo += _imports(name, tree)
    return sorted(files)


def stage_entry(cmd: str) -> str:
    """The module a dvc.yaml `cmd` runs: `python -m stages.<stage> ...` -> stages.<stage>."""
    words = shlex.split(cmd)
    if len(words) < 3 or words[:2] != ["python", "-m"] or not words[2].startswith("stages."):
        raise ValueError(f"not a `python -m stages.<stage>` cmd: {cmd!r}")
    if module_file(words[2]) is None:
        raise ValueError(f"{cmd!r}: no module {words[2]} (a file stages/<stage>.py)")
    return words[2]


@lru_cache(maxsize=None)
def package_dir(package: str) -> Path | None:
    """The folder of one of PACKAGES (stages/ is found where Python imports it from)."""
    if package == "geodistill":
        return PACKAGE_DIR
    spec = importlib.util.find_spec(package) if package in PACKAGES else None
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def module_file(name: str) -> Path | None:
    """The file of module `name` inside the package (a package's __init__.py), or None."""
    parts = name.split(".")
    root = package_dir(parts[0]) if parts[0] in PACKAGES else None
    if root is None:
        return None
    base = root.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _parents(name: str) -> list[str]:
    """geodistill.data.fetch -> [geodistill, geodistill.data, geodistill.data.fetch]: importing a
    module runs each package's __init__ on the way."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@lru_cache(maxsize=None)
def _tree(name: str) -> ast.Module:
    return ast.parse(module_file(name).read_text(), str(module_file(name)))


def _imports(name: str, *nodes: ast.AST) -> list[str]:
    """Modules of the package imported anywhere inside `nodes` of module `name`, with the packages
    above them (their __init__ runs first); `from x import y` yields x.y when y is a module."""
    out = []
    for node in (n for root in nodes for n in ast.walk(root)):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, node)
            out += [base] + [f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}")]
    return [parent for m in out if m.split(".")[0] in PACKAGES for parent in _parents(m)]


def _absolute(name: str, node: ast.ImportFrom) -> str:
    """The module `from ... import` reads from, relative imports resolved against module `name`."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if module_file(name).name == "__init__.py" else name.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _function_nodes(module: str, function: str) -> list[ast.AST]:
    """The function and every top-level function or class of the module it names, transitively,
    plus the module's top-level statements other than definitions (they run on import)."""
    tree = _tree(module)
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    if function not in defs:
        raise ValueError(f"{module}:{function}: no such function in {module_file(module)}")
    reached, todo = {}, [function]
    while todo:
        name = todo.pop()
        if name in reached or name not in defs:
            continue
        reached[name] = defs[name]
        todo += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name)]
    top = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return top + list(reached.values())


def _data_files(name: str, nodes: list[ast.AST]) -> set[Path]:
    """Non-Python files beside module `name` whose file name appears as a string in `nodes`."""
    folder = module_file(name).parent
    strings = {n.value for root in nodes for n in ast.walk(root) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    return {p for p in folder.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc") and p.name in strings}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m geodistill.codedeps", description=__doc__.split("\n")[0])
    ap.add_argument("cmd", help='a stage\'s command, e.g. "python -m stages.index" (or an entry pkg.module[:function])')
    ap.add_argument("--skip", action="append", default=[], help="a module the stage never runs (repeatable)")
    args = ap.parse_args(argv)
    entry = stage_entry(args.cmd) if args.cmd.startswith("python ") else args.cmd
    for path in closure(entry, frozenset(args.skip)):
        print(f"- {_shown(path)}")


def _shown(path: Path) -> str:
    """`path` relative to the working directory where it lies below it (dvc.yaml's form)."""
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
