"""Package discovery only (metadata lives in pyproject.toml): core/ is imported as ``bevdeploy``
and plugins/ as ``bevdeploy.plugins``; every folder with an ``__init__.py`` below them is a package."""

from pathlib import Path

from setuptools import setup

ROOTS = {"bevdeploy": "core", "bevdeploy.plugins": "plugins"}


def _packages() -> list[str]:
    found = []
    for package, folder in ROOTS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            rel = init.parent.relative_to(folder).parts
            found.append(".".join((package, *rel)))
    return found


setup(package_dir=ROOTS, packages=_packages())
