"""Domains from other packages: an ``EnvEntry`` declared under the ``frl.envs`` entry-point group.

A package adds, in its ``pyproject.toml``::

    [project.entry-points."frl.envs"]
    my-domain = "my_package.my_env:ENTRY"     # an EnvEntry, a list of them, or a function returning either

and after ``pip install`` its env appears in ``frl list`` and works with ``frl train``, ``frl run`` configs and
``frl bench`` — the convention of Gymnasium's own plugin envs (``gymnasium.envs`` entry points). A plugin that
fails to load does not break the suite: its error is kept in ``PLUGIN_ERRORS`` (``frl list`` shows it) and
``frl check`` on its name repeats it.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata
from typing import Any

from envs.registry import ENV_ENTRIES, EnvEntry, register_entry

ENTRY_POINT_GROUP = "frl.envs"
PLUGIN_ENTRIES: dict[str, str] = {}   # env id -> "distribution (entry point name)"
PLUGIN_ERRORS: dict[str, str] = {}    # entry point name -> one-line error


def _entries(obj: Any) -> list[EnvEntry]:
    if callable(obj) and not isinstance(obj, EnvEntry):
        obj = obj()
    items = [obj] if isinstance(obj, EnvEntry) else list(obj)
    bad = [x for x in items if not isinstance(x, EnvEntry)]
    if bad:
        raise TypeError(f"expected envs.registry.EnvEntry objects, got {type(bad[0]).__name__}")
    return items


def load_plugins(entry_points: Iterable[metadata.EntryPoint] | None = None) -> list[str]:
    """Register every plugin domain; return the env ids registered. Errors go to ``PLUGIN_ERRORS``."""
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    added = []
    for ep in eps:
        try:
            for entry in _entries(ep.load()):
                if entry.env_id in ENV_ENTRIES and ENV_ENTRIES[entry.env_id] is not entry:
                    raise ValueError(f"env id {entry.env_id!r} is already registered")
                register_entry(entry)
                dist = ep.dist.name if getattr(ep, "dist", None) is not None else ep.value
                PLUGIN_ENTRIES[entry.env_id] = f"{dist} ({ep.name})"
                added.append(entry.env_id)
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the suite
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            PLUGIN_ERRORS[ep.name] = f"{ep.value}: {type(e).__name__}: {first}"
    return added
