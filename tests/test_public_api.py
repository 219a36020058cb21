import subprocess
import sys

import pytest

import adaptive_router


def test_all_is_sorted_and_every_name_resolves():
    names = [n for n in adaptive_router.__all__ if n != "__version__"]
    assert adaptive_router.__all__ == sorted(adaptive_router.__all__)
    for name in names:
        assert getattr(adaptive_router, name) is not None, name


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        adaptive_router.nope  # noqa: B018


def test_import_loads_neither_torch_nor_langchain():
    code = (
        "import sys, adaptive_router; from adaptive_router import allocate, Ladder, OutcomeSet, pass_at_k;"
        "heavy = [m for m in ('torch', 'transformers', 'langchain_core', 'openai') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_integrations_install_under_the_package_not_top_level():
    import adaptive_router.integrations as integrations

    assert integrations.__name__ == "adaptive_router.integrations"


@pytest.mark.parametrize(
    ("package", "names"),
    [
        ("adaptive_router.allocation", {"Frontier", "aiq", "RoundRobinUnsolved", "AdaptiveConsistency"}),
        ("adaptive_router.runnables", {"FallbackMetadata", "FailedAttemptRecord"}),
    ],
)
def test_subpackages_export_their_public_names_sorted(package, names):
    import importlib

    mod = importlib.import_module(package)
    assert mod.__all__ == sorted(mod.__all__)
    assert names <= set(mod.__all__)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name


def test_the_app_imports_allocation_and_runnables_from_their_packages():
    import ast
    from pathlib import Path

    app = Path(adaptive_router.__file__).parent / "app"
    deep = []
    for path in sorted(app.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            )
            deep += [f"{path.name}: {n}" for n in names
                     if n.startswith(("adaptive_router.allocation.", "adaptive_router.runnables."))]
    assert deep == []
