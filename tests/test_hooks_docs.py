"""docs/hooks.md documents every hook a host may call, with its exact signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pluggy

from wn_persist_plugin import hookspecs

HOOKS_DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"


def hook_specs() -> dict[str, pluggy.HookCaller]:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return {
        name: caller
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    }


def signature(name: str, caller: pluggy.HookCaller) -> str:
    """`name(arg: Annotation, ...) -> Return`, as written in hookspecs.py."""
    assert caller.spec is not None
    sig = inspect.signature(caller.spec.function)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def documented() -> list[str]:
    return re.findall(r"^## `(.+)`$", HOOKS_DOC.read_text(), flags=re.MULTILINE)


def test_every_hook_has_a_heading_with_its_exact_signature():
    specs = hook_specs()
    assert {"on_startup", "on_kill_processed", "flush_pending", "pipeline_stats"} <= set(specs)
    headings = documented()
    for name, caller in specs.items():
        assert signature(name, caller) in headings, f"docs/hooks.md lacks {name}"
    assert len(headings) == len(specs), "docs/hooks.md documents a hook that does not exist"


def test_every_hook_is_annotated_and_says_when_it_is_called():
    for name, caller in hook_specs().items():
        assert caller.spec is not None
        function = caller.spec.function
        sig = inspect.signature(function)
        assert sig.return_annotation is not inspect.Signature.empty, name
        assert all(p.annotation is not p.empty for p in sig.parameters.values()), name
        assert "alled" in (function.__doc__ or ""), f"{name}: say when the host calls it"
