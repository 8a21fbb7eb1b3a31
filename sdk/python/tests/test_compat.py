"""The SDK promises Python 3.9+ (pyproject's requires-python), but CI runs the
machine's python3 (3.11 on Debian 12, no 3.9 to be had from its packages).
So every module is checked statically against 3.9: its syntax parsed with
ast's feature_version=(3, 9), and the standard-library names added after 3.9
that an import or attribute would reach at run time refused.
"""

import ast
import pathlib
import unittest

SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "stacyvm"

# typing names added in 3.10+.
NEW_TYPING = {
    "TypeAlias", "ParamSpec", "Concatenate", "TypeGuard", "Self", "Never",
    "LiteralString", "Required", "NotRequired", "Unpack", "TypeVarTuple",
    "assert_never", "assert_type", "reveal_type", "dataclass_transform",
    "override", "TypeIs", "ReadOnly",
}
# module.attribute pairs added in 3.10+.
NEW_ATTRS = {
    ("asyncio", "TaskGroup"), ("asyncio", "timeout"), ("asyncio", "timeout_at"),
    ("asyncio", "Runner"), ("datetime", "UTC"), ("enum", "StrEnum"),
    ("itertools", "pairwise"), ("itertools", "batched"),
    ("contextlib", "aclosing"), ("contextlib", "chdir"),
}
NEW_MODULES = {"tomllib"}
NEW_BUILTINS = {"aiter", "anext", "ExceptionGroup", "BaseExceptionGroup"}
# Keyword arguments added in 3.10+.
NEW_KWARGS = {("dataclass", "slots"), ("dataclass", "kw_only"), ("zip", "strict")}


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


class Python39Compat(unittest.TestCase):
    def test_modules_are_python39(self):
        files = sorted(SRC.glob("*.py"))
        self.assertTrue(files, f"no modules under {SRC}")
        for path in files:
            with self.subTest(module=path.name):
                src = path.read_text()
                try:
                    tree = ast.parse(src, filename=str(path), feature_version=(3, 9))
                except SyntaxError as e:
                    self.fail(f"{path.name}:{e.lineno}: not Python 3.9 syntax: {e.msg}")
                problems = []
                future = any(
                    isinstance(n, ast.ImportFrom) and n.module == "__future__"
                    and any(a.name == "annotations" for a in n.names)
                    for n in tree.body
                )
                for node in ast.walk(tree):
                    line = getattr(node, "lineno", 0)
                    if isinstance(node, ast.ImportFrom):
                        if node.module == "typing":
                            for a in node.names:
                                if a.name in NEW_TYPING:
                                    problems.append(f"{line}: typing.{a.name} is 3.10+")
                        if node.module in NEW_MODULES:
                            problems.append(f"{line}: module {node.module} is 3.11+")
                        for a in node.names:
                            if (node.module, a.name) in NEW_ATTRS:
                                problems.append(f"{line}: {node.module}.{a.name} is 3.10+")
                    elif isinstance(node, ast.Import):
                        for a in node.names:
                            if a.name in NEW_MODULES:
                                problems.append(f"{line}: module {a.name} is 3.11+")
                    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                        if (node.value.id, node.attr) in NEW_ATTRS or (
                            node.value.id == "typing" and node.attr in NEW_TYPING
                        ):
                            problems.append(f"{line}: {node.value.id}.{node.attr} is 3.10+")
                    elif isinstance(node, ast.Name) and node.id in NEW_BUILTINS:
                        problems.append(f"{line}: builtin {node.id} is 3.10+")
                    elif isinstance(node, ast.Call):
                        for kw in node.keywords:
                            if (_call_name(node), kw.arg) in NEW_KWARGS:
                                problems.append(f"{line}: {_call_name(node)}({kw.arg}=) is 3.10+")
                    # `X | Y` in an annotation is evaluated at import time on
                    # 3.9 unless annotations are postponed.
                    if not future and isinstance(node, (ast.arg, ast.AnnAssign, ast.FunctionDef, ast.AsyncFunctionDef)):
                        ann = node.returns if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else node.annotation
                        if ann is not None and any(
                            isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(ann)
                        ):
                            problems.append(f"{line}: `X | Y` annotation needs `from __future__ import annotations` on 3.9")
                self.assertEqual(problems, [], f"{path.name} is not Python 3.9 compatible")

    def test_the_check_catches_new_code(self):
        # The checker itself must reject what it claims to: a 3.10 match
        # statement does not parse as 3.9.
        with self.assertRaises(SyntaxError):
            ast.parse("match x:\n    case 1:\n        pass\n", feature_version=(3, 9))


if __name__ == "__main__":
    unittest.main()
