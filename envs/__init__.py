"""Domain simulators. Importing this package registers every env with gymnasium as ``frl/<Name>-v0``, then the
plugin domains other packages declare under the ``frl.envs`` entry-point group (``envs.plugins``)."""

from __future__ import annotations

from envs import (
    cartpole_hetero,
    cv2x,
    driving,
    edge_caching,
    mec_allocation,
    mec_offloading,
    oran_access,
    robot_navigation,
    sfc_orchestration,
    task_scheduling,
    uav_mec,
)
from envs.registry import ENV_ENTRIES, EnvConfigError, EnvEntry, env_entry, register_entry

for _entry in (mec_offloading.ENTRY, edge_caching.ENTRY, oran_access.ENTRY, robot_navigation.ENTRY,
               robot_navigation.ENTRY_DISCRETE, cv2x.ENTRY, cartpole_hetero.ENTRY,
               task_scheduling.ENTRY, uav_mec.ENTRY, mec_allocation.ENTRY, driving.ENTRY,
               sfc_orchestration.ENTRY):
    register_entry(_entry)
BUILTIN_ENV_IDS = tuple(ENV_ENTRIES)

from envs.plugins import load_plugins  # noqa: E402  (after the built-ins: a plugin may not shadow them)

load_plugins()

__all__ = ["BUILTIN_ENV_IDS", "ENV_ENTRIES", "EnvConfigError", "EnvEntry", "env_entry", "register_entry"]
