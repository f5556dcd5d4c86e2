"""Optional extras: importing a package that an extra provides, with the install line on failure."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"gymnax": "peers", "xminigrid": "peers", "navix": "peers", "ray": "ray"}


class MissingExtraError(ImportError):
    """A feature needs a package of an optional extra that is not installed.

    The message is one line that names the feature, the package and the install command; the CLI
    prints it as is, without a traceback.
    """


def import_extra(package: str, needed_for: str) -> ModuleType:
    """Import `package` (of one of `EXTRAS`), or raise MissingExtraError saying how to get it."""
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as err:
        if err.name != package:  # the package is there but broken: show the real error
            raise
        extra = EXTRAS[package]
        raise MissingExtraError(
            f"{needed_for} needs the {package} package, from the {extra!r} extra: pip install "
            f"'scalegym[{extra}]' (in a checkout: .venv/bin/pip install -e '.[{extra}]')"
        ) from None
