"""``python -m minialexnet <command>``: see ``minialexnet.cli``."""

import sys


def shadowing_folder() -> str | None:
    """The folder imported as ``minialexnet`` in place of the package, if one was.

    From the folder holding a clone named minialexnet, that clone (no ``__init__.py``) is a
    namespace package found before an editable install made by setuptools' import finder
    (installs before setup.cfg's ``package_dir``); only submodules such as this one then come
    from the package, and ``minialexnet.data`` would be the clone's top-level data/ folder.
    """
    package = sys.modules.get(__spec__.parent if __spec__ else "")
    if package is None or getattr(package, "__file__", None) is not None:
        return None
    return next(iter(package.__path__), "?")


if (folder := shadowing_folder()) is not None:
    print(
        f"python -m minialexnet: the folder {folder} hides the installed package (a clone "
        f"named minialexnet in the current folder?); run from another folder, or reinstall "
        f"(python -m pip install -e <the clone>), which makes it work from any folder",
        file=sys.stderr,
    )
    raise SystemExit(2)

from .cli import main  # noqa: E402  (after the check: importing cli needs the real package)

raise SystemExit(main())
