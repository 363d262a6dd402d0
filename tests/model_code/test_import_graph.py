"""model_code's modules import one another one way: no module reaches itself through its imports, counting the
imports inside functions too (a lazy import is still an edge)."""
import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, read from the sources (nothing is imported)."""
    paths = {}
    for path in (root / package).rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        paths[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in paths.items():
        named = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                named.add(node.module)
                named.update(f"{node.module}.{alias.name}" for alias in node.names)
        # a package's __init__ is passed through on the way to its modules, not an edge of its own
        graph[name] = {target for target in named if target in paths and target != name
                       and paths[target].name != "__init__.py"}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the path that closes it (depth-first search, grey nodes on the path)."""
    found, done, path = [], set(), []

    def visit(name: str) -> None:
        path.append(name)
        for target in sorted(graph[name]):
            if target in path:
                found.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name)
    return found


def test_model_code_imports_run_one_way():
    graph = import_graph(REPO_ROOT, "model_code")
    assert len(graph) > 40 and sum(map(len, graph.values())) > 100, "the graph was not read"
    assert circles(graph) == []


def test_a_circle_through_a_lazy_import_is_found(tmp_path):
    """Negative control: the same reading finds a circle closed by an import inside a function."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg.sub import a\n    return a\n")
    (package / "c.py").write_text("import pkg.b\n")
    assert circles(import_graph(tmp_path, "pkg")) == [["pkg.b", "pkg.sub.a", "pkg.b"]]
