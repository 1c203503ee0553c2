"""The plugin manager: built-in plugins load by module path, third-party ones through the
entry-point group ``bevdeploy``. A plugin that fails to import is remembered with its reason
(shown by ``bevdeploy plugins``) instead of breaking every command."""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from functools import cache

import pluggy

from . import PROJECT_NAME, hookspecs
from .errors import BevDeployError

BUILTIN_PLUGINS: tuple[str, ...] = (
    "bevdeploy._defaults",  # generic stage implementations; registered first so they run last
    "bevdeploy.backends",
    "bevdeploy.plugins.trt_ops",
    "bevdeploy.plugins.bevfusion",
    "bevdeploy.plugins.bevdet",
)


@dataclass(frozen=True)
class PluginFailure:
    name: str
    source: str  # module path or "entry point <name> = <value>"
    reason: str


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the failures seen while loading plugins."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.dist_versions: dict[str, str] = {}  # entry-point plugin name -> its distribution's version


def _load_builtin(pm: PluginManager, module_path: str, disabled: set[str]) -> None:
    if module_path in disabled or module_path.rsplit(".", 1)[-1] in disabled:
        return
    try:
        module = importlib.import_module(module_path)
    except Exception as exc:  # an optional dependency missing must not break other plugins
        pm.failures.append(PluginFailure(module_path, module_path, f"{type(exc).__name__}: {exc}"))
        return
    pm.register(module, name=module_path)


def _load_entry_points(pm: PluginManager, disabled: set[str]) -> None:
    for ep in importlib.metadata.entry_points(group=PROJECT_NAME):
        if ep.name in disabled or pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            pm.failures.append(PluginFailure(ep.name, f"entry point {ep.name} = {ep.value}", f"{type(exc).__name__}: {exc}"))
            continue
        pm.register(plugin, name=ep.name)
        if ep.dist is not None:
            pm.dist_versions[ep.name] = ep.dist.version


def make_plugin_manager(disabled: tuple[str, ...] = (), entry_points: bool = True) -> PluginManager:
    """A fresh manager with the built-ins and (unless ``entry_points`` is False) third-party
    plugins. ``disabled`` names plugins (module path, last component, or entry-point name) to skip."""
    pm = PluginManager()
    skip = set(disabled)
    for module_path in BUILTIN_PLUGINS:
        _load_builtin(pm, module_path, skip)
    if entry_points:
        _load_entry_points(pm, skip)
    return pm


@cache
def get_plugin_manager() -> PluginManager:
    """The process-wide manager (built-ins + entry points), created on first use."""
    return make_plugin_manager()


def plugin_version(pm: pluggy.PluginManager, plugin: object) -> str:
    """The installed distribution version of a plugin, or bevdeploy's own for built-ins."""
    for dist_plugin, dist in pm.list_plugin_distinfo():
        if dist_plugin is plugin:
            return dist.version
    name = pm.get_name(plugin)
    if name in getattr(pm, "dist_versions", {}):
        return pm.dist_versions[name]
    from . import __version__

    return __version__


def _collect(pm: pluggy.PluginManager, hook_name: str) -> list:
    items = []
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        for item in impl.function() or []:
            items.append(item.model_copy(update={"plugin": pm.get_name(impl.plugin) or ""}))
    return items


def _by_name(items: list, kind: str) -> dict:
    out: dict = {}
    for item in items:
        if item.name in out:
            raise BevDeployError(
                f"{kind} {item.name!r} is registered by both {out[item.name].plugin} and {item.plugin}; "
                f"uninstall or disable one of them"
            )
        out[item.name] = item
    return out


def registered_models(pm: pluggy.PluginManager | None = None) -> dict:
    """Model name -> ModelSpec over all plugins."""
    return _by_name(_collect(pm or get_plugin_manager(), "bevdeploy_register_models"), "model")


def registered_backends(pm: pluggy.PluginManager | None = None) -> dict:
    """Backend name -> BackendSpec over all plugins."""
    return _by_name(_collect(pm or get_plugin_manager(), "bevdeploy_register_backends"), "backend")


def registered_ops(pm: pluggy.PluginManager | None = None) -> dict:
    """Op name -> OpSpec over all plugins."""
    return _by_name(_collect(pm or get_plugin_manager(), "bevdeploy_register_ops"), "op")
