"""No import cycles at run time: every module can be imported on its own, and a
reader follows dependencies one way (imports under TYPE_CHECKING, for annotations
only, may name a facade that imports the module back)."""

from __future__ import annotations

import grimp


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("casarray", cache_dir=None, exclude_type_checking_imports=True)
    cycles = sorted(
        {
            tuple(sorted((importer, imported)))
            for importer in graph.modules
            for imported in graph.find_modules_directly_imported_by(importer)
            if graph.find_shortest_chain(importer=imported, imported=importer)
        }
    )
    assert cycles == []
