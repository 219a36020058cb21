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
