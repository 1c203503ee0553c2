"""Built-in plugins, one model family (or op library) per package, and the plugin manager.

The manager lives in :mod:`bevdeploy.manager`; it is re-exported here because this package
name (``bevdeploy.plugins``) is where users look for it.
"""

from ..manager import (
    BUILTIN_PLUGINS,
    PluginFailure,
    PluginManager,
    get_plugin_manager,
    make_plugin_manager,
    registered_backends,
    registered_models,
    registered_ops,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "PluginFailure",
    "PluginManager",
    "get_plugin_manager",
    "make_plugin_manager",
    "registered_backends",
    "registered_models",
    "registered_ops",
]
