"""Package attributes loaded on first use (PEP 562), so importing a package stays cheap.

A package that re-exports names from heavy submodules (torch, rosbags, onnxruntime) lists
them by submodule and installs the hook::

    __all__, __getattr__ = lazy_exports(__name__, {
        "trainer": ("TrainConfig", "fit"),
        "checkpoint": ("load_checkpoint", "save_checkpoint"),
    })

``import lnn_ros.training`` then imports none of the submodules; ``lnn_ros.training.fit`` (or
``from lnn_ros.training import fit``) imports ``lnn_ros.training.trainer`` at that moment.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, Sequence[str]]) -> tuple[list[str], Callable[[str], Any]]:
    """The sorted ``__all__`` and the module ``__getattr__`` of ``package``.

    Args:
        package: the package's ``__name__``.
        modules: each submodule (name relative to ``package``) with the names it exports.

    Raises:
        ValueError: a name is listed under two submodules.
    """
    owners: dict[str, str] = {}
    for module, names in modules.items():
        for name in names:
            if name in owners:
                raise ValueError(
                    f"{package}: {name!r} is listed under both {owners[name]!r} and {module!r}; list it once."
                )
            owners[name] = module

    def __getattr__(name: str) -> Any:
        module = owners.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return sorted(owners), __getattr__
