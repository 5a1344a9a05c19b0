"""Domain packages stay free of web, GraphQL and queue frameworks; adapters go through services."""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
DOMAIN_PACKAGES = [
    p for p in APP.iterdir() if p.is_dir() and p.name not in ("api", "__pycache__") and (p / "__init__.py").exists()
]
FRAMEWORKS = ("fastapi", "starlette", "strawberry", "arq")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", DOMAIN_PACKAGES, ids=lambda p: p.name)
def test_domain_imports_no_framework(package: Path) -> None:
    for path in package.rglob("*.py"):
        offending = {m for m in imported_modules(path) if m.split(".")[0] in FRAMEWORKS}
        assert not offending, f"{path.relative_to(APP)} imports {offending}"


def test_adapters_import_no_repositories_or_models_queries() -> None:
    for path in (APP / "api").rglob("*.py"):
        offending = {m for m in imported_modules(path) if m.endswith((".repository", ".query"))}
        assert not offending, f"{path.relative_to(APP)} imports {offending}"
