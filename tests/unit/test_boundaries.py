"""The shells (server, tui, flows) use the core's public seams only: they read no
attribute of another object whose name starts with one underscore (``platform.data._ctx``,
``deployments._resolve``) and import no private name from the core. Their own objects'
private state (``self._x``, and ``super()._x`` of a subclass extending its base) is theirs. import-linter keeps the rooms apart; this keeps
the reach-ins out."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELLS = ("server", "tui", "flows")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and len(name) > 1


def reach_ins(source: str, where: str) -> list[str]:
    """``where:line: what`` for each private member ``source`` reaches into."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            own = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
            base = (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super"
                    and not owner.args)  # a subclass extending its own base's hook
            if not (own or base):
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlops_lite":
            found += [f"{where}:{node.lineno}: from {node.module} import {alias.name}"
                      for alias in node.names if _private(alias.name)]
    return found


def test_no_shell_reaches_into_a_private_member_of_the_core() -> None:
    found = [hit for shell in SHELLS for path in sorted((ROOT / shell).rglob("*.py"))
             for hit in reach_ins(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == [], "use (or add) a public method or constructor argument instead:\n" + "\n".join(found)


def test_the_check_sees_a_reach_in_and_leaves_a_shells_own_state_alone() -> None:
    source = ("from mlops_lite.inference.routing import _prediction\n"
              "def f(platform):\n    return platform.deployments._resolve('x')\n"
              "class A:\n    def g(self):\n        return self._own, self.__class__\n")
    assert reach_ins(source, "s.py") == ["s.py:1: from mlops_lite.inference.routing import _prediction",
                                         "s.py:3: platform.deployments._resolve"]
