"""Domain simulators. Importing this package registers every env with gymnasium as ``frl/<Name>-v0``."""

from __future__ import annotations

from envs.registry import ENV_ENTRIES, EnvConfigError, EnvEntry, env_entry, register_entry
from envs import cartpole_hetero, edge_caching, mec_offloading  # noqa: E402

for _module in (mec_offloading, edge_caching, cartpole_hetero):
    register_entry(_module.ENTRY)

__all__ = ["ENV_ENTRIES", "EnvConfigError", "EnvEntry", "env_entry", "register_entry"]
