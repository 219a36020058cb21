"""A custom import-linter contract: no module imports another package's ``_private`` module.

``adaptive_router.allocation.engine`` may import ``adaptive_router.allocation._segments`` (its own package);
``adaptive_router.integrations.agents`` may not import ``adaptive_router.runnables._planning``, and a
subpackage counts as another package. ``shared`` lists private modules every module may import
(default: ``adaptive_router._lazy``, the lazy re-export helper of every package ``__init__``).
"""

from __future__ import annotations

from importlinter import Contract, ContractCheck, fields, output

__all__ = ["PrivateModulesContract", "private_owner"]


def private_owner(module: str) -> str | None:
    """The package that owns ``module`` when one of its components is private, else None.

    >>> private_owner("adaptive_router.runnables._planning")
    'adaptive_router.runnables'
    >>> private_owner("adaptive_router.runnables.router") is None
    True
    """
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


class PrivateModulesContract(Contract):
    """Forbid importing a ``_private`` module of the root package from outside the package that holds it."""

    shared = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph, verbose):  # type: ignore[no-untyped-def]
        shared = set(self.shared or ["adaptive_router._lazy"])
        bad = []
        for importer in sorted(graph.modules):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                owner = private_owner(imported)
                if owner is None or imported in shared or not imported.startswith("adaptive_router"):
                    continue
                if owner in (importer, importer.rpartition(".")[0]):
                    continue
                bad.append((importer, imported))
        return ContractCheck(kept=not bad, metadata={"bad": bad})

    def render_broken_contract(self, check):  # type: ignore[no-untyped-def]
        for importer, imported in check.metadata["bad"]:
            output.print_error(f"{importer} imports {imported}, a private module of another package")
            output.new_line()
