"""The package root's public surface is exactly `__all__`, sorted."""

from __future__ import annotations

from types import ModuleType

import wn_persist_plugin


def test_all_is_sorted_and_complete():
    public = sorted(
        name
        for name, value in vars(wn_persist_plugin).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    )
    assert wn_persist_plugin.__all__ == sorted(wn_persist_plugin.__all__)
    assert sorted(n for n in wn_persist_plugin.__all__ if n != "__version__") == public
    for name in wn_persist_plugin.__all__:
        assert hasattr(wn_persist_plugin, name)
