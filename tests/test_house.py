"""The house's rules that read rose's own source: no import circle, loading data knows nothing of MLflow."""

from __future__ import annotations

import ast
from pathlib import Path

ROSE = Path(__file__).resolve().parents[1] / "rose"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROSE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROSE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """rose modules ``path`` imports anywhere (at the top, inside functions, under TYPE_CHECKING): ``import a.b``,
    ``from a import b`` (``b`` a module, else ``a``) and relative imports."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # ``import rose.a.b`` of a package: the deepest module known
                name = name.rpartition(".")[0]
            if name and name != here:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, known) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):  # noqa: B023
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import x\n")
    known = {"a", "b"}
    edges = {}
    for name in known:
        tree = ast.parse((tmp_path / f"{name}.py").read_text())
        edges[name] = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
                       for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))} & known  # fmt: skip
    assert cycles(edges) == [["a", "b"]]


def test_rose_has_no_import_circle():
    edges = graph()
    assert edges["rose.tracking"], "the reader found no imports: it is broken"
    assert "rose.lease" in edges["rose.tracking"]
    found = cycles(edges)
    assert not found, "import circles: " + "; ".join(" <-> ".join(group) for group in found)


def test_loading_data_knows_nothing_of_mlflow():
    edges = graph()
    for module in ("rose.human_data", "rose.locations", "rose.content"):
        assert "rose.tracking" not in edges[module], f"{module} imports rose.tracking"
        assert "mlflow" not in (ROSE.parent / modules()[module]).read_text(), f"{module} mentions mlflow"
