"""Hook specs are documented, implementations are verified at registration, and plugins are
found through entry points (or shown with the reason they failed)."""

from __future__ import annotations

import inspect
import sys

import bevdeploy
import pluggy
import pytest
from bevdeploy import hookspecs
from bevdeploy.cli import main
from bevdeploy.manager import get_plugin_manager, make_plugin_manager, registered_models

STAGE_HOOKS = {
    "bevdeploy_quantize",
    "bevdeploy_partition",
    "bevdeploy_export",
    "bevdeploy_build",
    "bevdeploy_infer",
    "bevdeploy_evaluate",
}


def _specs() -> dict[str, object]:
    return {n: f for n, f in vars(hookspecs).items() if n.startswith("bevdeploy_") and inspect.isfunction(f)}


def test_every_hookspec_is_documented_and_stage_hooks_pick_one():
    specs = _specs()
    assert STAGE_HOOKS | {"bevdeploy_register_models", "bevdeploy_register_ops", "bevdeploy_register_backends"} == set(specs)
    for name, fn in specs.items():
        doc = inspect.getdoc(fn) or ""
        assert len(doc.split()) >= 15, f"{name} needs a docstring saying who calls it and what it returns"
        opts = fn.bevdeploy_spec
        assert opts["firstresult"] == (name in STAGE_HOOKS), name


def test_core_defaults_implement_every_stage_hook_but_partition():
    # partitioning is model knowledge: only model plugins implement it
    pm = make_plugin_manager(entry_points=False)
    defaults = pm.get_plugin("bevdeploy._defaults")
    assert {h.name for h in pm.get_hookcallers(defaults)} == STAGE_HOOKS - {"bevdeploy_partition"}


def test_registration_rejects_an_implementation_asking_for_an_unknown_argument():
    class Bad:
        @bevdeploy.hookimpl
        def bevdeploy_build(self, artifact, backend, precision, engine_cache):  # no such argument
            return None

    pm = make_plugin_manager(entry_points=False)
    with pytest.raises(pluggy.PluginValidationError, match="engine_cache"):
        pm.register(Bad(), name="bad")


def test_third_party_plugin_is_registered_through_its_entry_point(toy_plugin, capsys):
    models = registered_models(get_plugin_manager())
    assert models["toydet"].plugin == "toydet"
    assert main(["plugins"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("toydet "))
    assert line.startswith("toydet 0.1:")  # the distribution's version, not bevdeploy's
    for hook in ("bevdeploy_partition", "bevdeploy_quantize", "bevdeploy_register_models"):
        assert hook in line
    assert main(["models"]) == 0
    assert "toydet [toydet]: toy BEV detector" in capsys.readouterr().out


def test_plugin_that_fails_to_import_is_listed_with_its_reason(tmp_path, capsys, monkeypatch):
    from plugin_packages import make_plugin_package

    source = "import bevdeploy_missing_dependency_xyz\n"
    root = make_plugin_package(tmp_path, "broken_plugin", "broken_plugin_mod", source, "brokenplug")
    monkeypatch.syspath_prepend(str(root))
    get_plugin_manager.cache_clear()
    try:
        assert main(["plugins"]) == 0
        out = capsys.readouterr().out
        assert "brokenplug FAILED (entry point brokenplug = broken_plugin_mod): ModuleNotFoundError" in out
        assert "bevdeploy_missing_dependency_xyz" in out
        assert "bevdeploy._defaults" in out  # the others still load
    finally:
        sys.modules.pop("broken_plugin_mod", None)
        get_plugin_manager.cache_clear()


def test_disabling_a_plugin_by_name():
    pm = make_plugin_manager(disabled=("backends",), entry_points=False)
    assert pm.get_plugin("bevdeploy.backends") is None
    assert pm.get_plugin("bevdeploy._defaults") is not None


def test_cli_imports_without_torch_and_knows_every_precision():
    import subprocess

    code = "import sys, bevdeploy.cli as c; assert 'torch' not in sys.modules; print(','.join(c.PRECISIONS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    from bevdeploy.graph import PRECISIONS

    assert out == ",".join(PRECISIONS)
