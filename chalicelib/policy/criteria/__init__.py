"""The ``when`` conditions: one module each, found and registered on first use.

Every module in this package declares one condition and registers it with
:func:`chalicelib.policy.criterion.register`; :func:`load` imports them
all, so a new condition is a new module here (plus its test and the
regenerated docs), with no list to update elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded: list[str] = []


def load() -> tuple[str, ...]:
    """Import every condition module of this package once; their names, sorted.

    Modules whose names start with ``_`` are helpers, not conditions.
    """
    if not _loaded:
        names = sorted(
            module.name for module in pkgutil.iter_modules(__path__) if module.name[0] != "_"
        )
        for name in names:
            importlib.import_module(f"{__name__}.{name}")
        _loaded.extend(names)
    return tuple(_loaded)
