"""Checkpoints of a federated run that load without running code, and resume bitwise.

**What is saved.** A checkpoint is the complete mutable state of a federation after a round: the global model
and the versions still in use, the history, the sampling, device, fault and strategy generators, the strategy's
and compressor's state, and every client — env (mid-episode state and its RNGs included), agent (networks,
optimisers, replay buffer, exploration generators), the method's client half (Ditto's personal model, IFCA's
cluster, …) — plus the process-wide torch, NumPy and ``random`` generators.

**How.** :func:`capture` walks the live objects and turns them into a tree of plain data (dicts, lists, numbers,
strings, bytes, tensors). ``torch.load(weights_only=True)`` loads that tree back with no code run from the
file. :func:`restore` writes the tree into objects that the same run built again from its configuration (the
same seed builds the same object graph), in place, so shared references stay shared. A checkpoint never
creates an object of a class named in the file: an object node needs a live object of the same class to land
in, or it is refused. This is generic — a new env, agent or method is checkpointed without code of its own —
and the resume tests (tests/federation/test_checkpoint.py) pin it bitwise on every agent, strategy and domain.

**The file** (:class:`Checkpointer`): ``torch.save`` of ``{"format", "version", "identity", "round", "sha256",
"payload"}``, where ``payload`` is the serialised tree, zlib-compressed, and ``sha256`` its digest; written to a temp
file, fsynced and renamed over the previous checkpoint (atomic). Loading refuses, with one line and without
touching the file: a file that does not unpickle under ``weights_only`` (corrupt, truncated, or holding code),
a wrong format or version (foreign), a digest mismatch (corrupt or edited), another run's identity, or a tree
that does not fit this run's objects. Not guarded against: a deliberate edit that also recomputes the digest
(there is no secret to sign with; the checkpoint is the user's own file — see the README's threat model).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import hashlib
import io
import os
import random
import sys
import tempfile
import types
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.envs.registration import EnvSpec

from federation.types import FederationError

FORMAT = "frl-suite checkpoint"
VERSION = 1
_T = "__t__"  # the tag of a non-primitive node
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")  # NumPy classes a checkpoint may create
_PRIMITIVE = (type(None), bool, int, float, str, bytes)
_SKIPPED = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType, type,
            functools.partial, property, staticmethod, classmethod, enum.Enum, range, slice, Path,
            np.dtype, torch.dtype, torch.device,
            EnvSpec)  # configuration: an env's spec is rebuilt from its registration (and cached lazily)


class CheckpointError(FederationError):
    """A checkpoint that cannot be written or loaded (names the file and why; the file is left untouched)."""


# ----- the tree ------------------------------------------------------------------------------------------------
def _frozen(obj: Any) -> bool:
    """A frozen dataclass is configuration: rebuilt identically from the run's config, never mutated."""
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type) and obj.__dataclass_params__.frozen


def _array_node(a: np.ndarray, path: str) -> dict[str, Any]:
    if a.dtype.hasobject or a.dtype.fields is not None:
        raise CheckpointError(f"cannot checkpoint {path}: an array of dtype {a.dtype} (numbers only)")
    data = torch.frombuffer(bytearray(np.ascontiguousarray(a).tobytes()), dtype=torch.uint8) if a.size else \
        torch.zeros(0, dtype=torch.uint8)
    return {_T: "nd", "dtype": a.dtype.str, "shape": list(a.shape), "data": data}


def _array_of(node: Mapping[str, Any]) -> np.ndarray:
    dtype = np.dtype(node["dtype"])
    raw = node["data"].numpy().tobytes()
    return np.frombuffer(raw, dtype=dtype).reshape(node["shape"]).copy()


def capture(obj: Any) -> Any:
    """``obj`` as a tree of plain data (see the module docstring); a part that cannot be saved raises
    :class:`CheckpointError` naming where it is."""
    return _capture(obj, "state", _canonical_paths(obj, "state"))


def _is_method(obj: Any) -> bool:
    return isinstance(obj, types.MethodType) and not isinstance(obj.__self__, type)


def _skipped(obj: Any) -> bool:
    """Code and configuration: rebuilt identically by the run, never saved."""
    return isinstance(obj, _SKIPPED) or _frozen(obj) or callable(obj) and not hasattr(obj, "__dict__")


def _shared(obj: Any) -> bool:
    """Whether ``obj`` is captured once and referred to elsewhere (anything but plain values and code)."""
    return not (isinstance(obj, (*_PRIMITIVE, np.generic, types.FunctionType, types.MethodType)) or _skipped(obj))


_LEAVES = (np.ndarray, np.random.Generator, np.random.SeedSequence, np.random.RandomState, torch.Generator,
           torch.Tensor, torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)


def _children(obj: Any, path: str) -> list[tuple[Any, str]]:
    """The parts of ``obj`` that :func:`_capture` descends into, with their paths (the two must agree)."""
    if _is_method(obj):
        return [(obj.__self__, f"{path}.__self__")]
    if not _shared(obj) or isinstance(obj, _LEAVES):
        return []
    if isinstance(obj, collections.deque | list | tuple):
        if all(type(v) in _PRIMITIVE for v in obj) or isinstance(obj, list) and _rows(obj):
            return []
        return [(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, set | frozenset):
        return [(v, f"{path}{{}}") for v in obj]
    if isinstance(obj, dict):
        return [(v, f"{path}[{k!r}]") for k, v in obj.items()]
    attrs = _attributes(obj)
    return [(v, f"{path}.{k}") for k, v in (attrs or {}).items()]


def _rows(obj: list[Any]) -> bool:
    return bool(obj) and all(type(v) is tuple and all(type(x) in _PRIMITIVE for x in v) for v in obj)


def _canonical_paths(root: Any, path: str) -> dict[int, str]:
    """Each shared object's path, breadth first: an object is stored where it is nearest the root (a client's
    env under the client, not under the agent that steps it), so it exists before anything refers to it."""
    canon: dict[int, str] = {}
    queue = collections.deque([(root, path)])
    while queue:
        obj, p = queue.popleft()
        if _shared(obj):
            if id(obj) in canon:
                continue
            canon[id(obj)] = p
        queue.extend(_children(obj, p))
    return canon


def _capture(obj: Any, path: str, canon: dict[int, str]) -> Any:
    if isinstance(obj, _PRIMITIVE):
        return obj
    if _is_method(obj):  # e.g. a stepper's converter: the method of an object of the run
        return {_T: "method", "self": _capture(obj.__self__, f"{path}.__self__", canon), "name": obj.__func__.__name__}
    if isinstance(obj, types.FunctionType) and "<" not in obj.__qualname__:  # a module-level function
        return {_T: "func", "cls": f"{obj.__module__}:{obj.__qualname__}"}
    if _skipped(obj):
        return {_T: "skip"}
    if isinstance(obj, np.generic):
        return {_T: "np", "v": _array_node(np.asarray(obj), path)}
    home = canon.get(id(obj))
    if home is not None and home != path:
        return {_T: "ref", "path": home}
    if isinstance(obj, np.ndarray):
        return _array_node(obj, path)
    if isinstance(obj, np.random.Generator):
        return {_T: "npgen", "state": obj.bit_generator.state}
    if isinstance(obj, np.random.SeedSequence):  # spawning changes it (n_children_spawned)
        entropy = obj.entropy if isinstance(obj.entropy, int | None) else [int(x) for x in obj.entropy]
        return {_T: "seedseq", "entropy": entropy, "spawn_key": [int(x) for x in obj.spawn_key],
                "pool_size": int(obj.pool_size), "n_children_spawned": int(obj.n_children_spawned)}
    if isinstance(obj, np.random.RandomState):
        return {_T: "randomstate", "state": _capture(obj.get_state(legacy=False), path, canon)}
    if isinstance(obj, torch.Generator):
        return {_T: "tgen", "state": obj.get_state()}
    if isinstance(obj, torch.Tensor):
        return {_T: "tensor", "v": obj.detach().clone()}
    if isinstance(obj, torch.nn.Module):
        return {_T: "module", "state": {k: v.detach().clone() for k, v in obj.state_dict().items()},
                "training": [m.training for m in obj.modules()]}
    if isinstance(obj, torch.optim.Optimizer):
        return {_T: "optim", "state": _capture(obj.state_dict(), path, {})}
    if isinstance(obj, torch.optim.lr_scheduler.LRScheduler):
        return {_T: "sched", "state": _capture(obj.state_dict(), path, {})}
    if isinstance(obj, collections.deque):
        return {_T: "deque", "maxlen": obj.maxlen, "v": [_capture(v, f"{path}[{i}]", canon) for i, v in enumerate(obj)]}
    if isinstance(obj, list | tuple):
        kind = "list" if isinstance(obj, list) else "tuple"
        if all(type(v) in _PRIMITIVE for v in obj):  # fast path: plain data (e.g. a list of rewards)
            return {_T: f"p{kind}", "v": list(obj)}
        if kind == "list" and _rows(obj):
            return {_T: "rows", "v": [list(v) for v in obj]}  # fast path: the history's (round, client, …) rows
        return {_T: kind, "v": [_capture(v, f"{path}[{i}]", canon) for i, v in enumerate(obj)]}
    if isinstance(obj, set | frozenset):
        return {_T: "set", "v": [_capture(v, f"{path}{{}}", canon) for v in obj]}
    if isinstance(obj, dict):
        return {_T: "dict", "k": [_capture(k, f"{path}.key", {}) for k in obj],
                "v": [_capture(v, f"{path}[{k!r}]", canon) for k, v in obj.items()]}
    attrs = _attributes(obj)
    if attrs is None:
        raise CheckpointError(f"cannot checkpoint {path}: a {type(obj).__module__}.{type(obj).__qualname__} "
                              "holds no inspectable state")
    return {_T: "obj", "cls": f"{type(obj).__module__}:{type(obj).__qualname__}",
            "a": {k: _capture(v, f"{path}.{k}", canon) for k, v in attrs.items()}}


def _attributes(obj: Any) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    has = False
    if hasattr(obj, "__dict__"):
        out.update(vars(obj))
        has = True
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                out[name] = getattr(obj, name)
                has = True
    return out if has else None


def restore(template: Any, tree: Any) -> Any:
    """Write ``tree`` (from :func:`capture`) into ``template`` (the same run's objects, built again) and return
    the restored value: containers and objects are restored in place, so shared references stay shared."""
    r = _Restorer()
    out = r.restore(template, tree, "state")
    r.link()
    if isinstance(out, _Pending):
        raise CheckpointError("checkpoint does not fit this run: its root is a reference")
    return out


class _Pending:
    """A reference to an object restored later in the walk, or an immutable value (a tuple) holding one:
    linked once the walk is done."""

    def __init__(self, path: str | None = None, build: Any = None) -> None:
        self.path, self.build = path, build


class _Restorer:
    def __init__(self) -> None:
        self.done: dict[str, Any] = {}
        self.links: list[tuple[Any, str, Any, str]] = []  # (container, "attr" | "item", key, target path)

    def link(self) -> None:
        for owner, how, key, target in self.links:
            value = self.resolve(target)
            if how == "attr":
                object.__setattr__(owner, key, value)
            else:
                owner[key] = value

    def resolve(self, value: Any) -> Any:
        if not isinstance(value, _Pending):
            return value
        if value.build is not None:
            return value.build(self.resolve)
        if value.path not in self.done:
            raise CheckpointError(f"checkpoint does not fit this run: a reference to {value.path}, which it lacks")
        return self.done[value.path]

    def _put(self, owner: Any, how: str, key: Any, value: Any) -> Any:
        if isinstance(value, _Pending):
            self.links.append((owner, how, key, value))
            return None
        return value

    def restore(self, tpl: Any, node: Any, path: str) -> Any:
        if not isinstance(node, dict) or _T not in node:
            if not isinstance(node, _PRIMITIVE):
                raise CheckpointError(f"checkpoint does not fit this run at {path}: unexpected {type(node).__name__}")
            return node
        kind = node[_T]
        if kind == "skip":
            return tpl
        if kind == "ref":  # the object stored at its own (breadth-first) path
            target = node["path"]
            return self.done[target] if target in self.done else _Pending(path=target)
        out = self._node(tpl, node, kind, path)
        self.done[path] = out
        return out

    def _node(self, tpl: Any, node: Any, kind: str, path: str) -> Any:  # noqa: C901 - one branch per node kind
        if kind == "method":  # a bound method of an object of the run: the same method of the restored object
            owner = self.restore(getattr(tpl, "__self__", None), node["self"], f"{path}.__self__")
            if isinstance(owner, _Pending):
                owner = getattr(tpl, "__self__", None)
            name = node["name"]
            if not isinstance(name, str) or not callable(getattr(owner, name, None)):
                raise CheckpointError(f"checkpoint does not fit this run at {path}: no method {name!r}")
            return getattr(owner, name)
        if kind == "func":
            return tpl if tpl is not None else _suite_attr(node["cls"], path)
        if kind == "np":
            return _array_of(node["v"])[()]
        if kind == "nd":
            arr = _array_of(node)
            if isinstance(tpl, np.ndarray) and tpl.shape == arr.shape and tpl.dtype == arr.dtype \
                    and tpl.flags.writeable:
                tpl[...] = arr
                return tpl
            return arr
        if kind == "npgen":
            if not isinstance(tpl, np.random.Generator):  # e.g. an env's generator made at its first reset
                name = node["state"].get("bit_generator") if isinstance(node["state"], dict) else None
                _need(name in _BIT_GENERATORS, path, f"a NumPy bit generator in {_BIT_GENERATORS}")
                tpl = np.random.Generator(getattr(np.random, name)())
            try:
                tpl.bit_generator.state = node["state"]
            except (TypeError, ValueError, KeyError) as e:
                raise CheckpointError(f"checkpoint does not fit this run at {path}: {e}") from None
            return tpl
        if kind == "seedseq":
            try:
                return np.random.SeedSequence(node["entropy"], spawn_key=tuple(node["spawn_key"]),
                                              pool_size=node["pool_size"],
                                              n_children_spawned=node["n_children_spawned"])
            except (TypeError, ValueError, KeyError) as e:
                raise CheckpointError(f"checkpoint does not fit this run at {path}: {e}") from None
        if kind == "randomstate":
            _need(isinstance(tpl, np.random.RandomState), path, "a NumPy RandomState")
            tpl.set_state(restore(None, node["state"]))
            return tpl
        if kind == "tgen":
            _need(tpl is None or isinstance(tpl, torch.Generator), path, "a torch Generator")
            gen = tpl if tpl is not None else torch.Generator()  # made lazily by the run (e.g. at a first update)
            try:
                gen.set_state(node["state"])
            except (TypeError, RuntimeError) as e:
                raise CheckpointError(f"checkpoint does not fit this run at {path}: {e}") from None
            return gen
        if kind == "tensor":
            v = node["v"]
            _need(isinstance(v, torch.Tensor), path, "a tensor")
            if isinstance(tpl, torch.Tensor) and tpl.shape == v.shape and tpl.dtype == v.dtype:
                with torch.no_grad():
                    tpl.copy_(v)
                return tpl
            return v
        if kind == "module":
            _need(isinstance(tpl, torch.nn.Module), path, "a torch module")
            try:
                tpl.load_state_dict(node["state"], strict=True)
            except (RuntimeError, KeyError) as e:
                raise CheckpointError(f"checkpoint does not fit this run at {path}: {str(e).splitlines()[0]}") \
                    from None
            for m, training in zip(tpl.modules(), node["training"], strict=False):
                m.training = bool(training)
            return tpl
        if kind in ("optim", "sched"):
            _need(isinstance(tpl, torch.optim.Optimizer | torch.optim.lr_scheduler.LRScheduler), path, "an optimiser")
            try:
                tpl.load_state_dict(restore(None, node["state"]))
            except (RuntimeError, KeyError, ValueError) as e:
                raise CheckpointError(f"checkpoint does not fit this run at {path}: {str(e).splitlines()[0]}") \
                    from None
            return tpl
        if kind in ("plist", "ptuple", "rows"):
            _need(isinstance(node["v"], list), path, "a list")
            values = [tuple(v) for v in node["v"]] if kind == "rows" else list(node["v"])
            if kind == "ptuple":
                return type(tpl)(*values) if isinstance(tpl, tuple) and type(tpl) is not tuple else tuple(values)
            if isinstance(tpl, list):
                tpl[:] = values
                return tpl
            return values
        if kind in ("list", "deque"):
            items = node["v"]
            same = isinstance(tpl, list | collections.deque) and len(tpl) == len(items)
            values = [self.restore(tpl[i] if same else None, v, f"{path}[{i}]") for i, v in enumerate(items)]
            if kind == "list":
                out = tpl if isinstance(tpl, list) else []
            else:
                same_kind = isinstance(tpl, collections.deque) and tpl.maxlen == node["maxlen"]
                out = tpl if same_kind else collections.deque(maxlen=node["maxlen"])
            out.clear()
            out.extend(None if isinstance(v, _Pending) else v for v in values)
            for i, v in enumerate(values):
                self._put(out, "item", i, v)
            return out
        if kind in ("tuple", "set"):
            items = node["v"]
            same = isinstance(tpl, tuple) and len(tpl) == len(items)
            values = [self.restore(tpl[i] if same else None, v, f"{path}[{i}]") for i, v in enumerate(items)]
            named = type(tpl) if isinstance(tpl, tuple) and type(tpl) is not tuple and same else None

            def build(resolve: Any, values: list[Any] = values) -> Any:
                done = [resolve(v) for v in values]
                return set(done) if kind == "set" else named(*done) if named is not None else tuple(done)

            if any(isinstance(v, _Pending) for v in values):  # immutable: made once what it refers to exists
                return _Pending(build=build)
            return build(lambda v: v)
        if kind == "dict":
            keys = [restore(None, k) for k in node["k"]]
            old = tpl if isinstance(tpl, dict) else {}
            values = {k: self.restore(old.get(k, None) if _hashable(k) else None, v, f"{path}[{k!r}]")
                      for k, v in zip(keys, node["v"], strict=True)}
            out = tpl if isinstance(tpl, dict) else {}
            out.clear()
            for k, v in values.items():
                out[k] = self._put(out, "item", k, v)
            return out
        if kind == "obj":
            if tpl is None:  # made lazily by the run (e.g. an agent's env stepper at its first learn): make it here
                tpl = _new_suite_object(node["cls"], path)
            cls = f"{type(tpl).__module__}:{type(tpl).__qualname__}"
            if cls != node["cls"]:
                raise CheckpointError(f"checkpoint does not fit this run at {path}: it holds a {node['cls']}, the run "
                                      f"has a {cls}")
            self.done[path] = tpl  # before its attributes: they may refer back to it (an agent's stepper → agent)
            for name, sub in node["a"].items():
                current = getattr(tpl, name, _MISSING)
                value = self.restore(None if current is _MISSING else current, sub, f"{path}.{name}")
                if isinstance(value, _Pending):
                    self.links.append((tpl, "attr", name, value))
                elif value is not current:
                    try:
                        object.__setattr__(tpl, name, value)
                    except (AttributeError, TypeError) as e:
                        raise CheckpointError(f"cannot restore {path}.{name}: {e}") from None
            return tpl
        raise CheckpointError(f"checkpoint does not fit this run at {path}: unknown node kind {kind!r}")


_MISSING = object()


SUITE_PACKAGES = ("agents", "envs", "federation", "scenarios")


def _suite_attr(name: Any, path: str) -> Any:
    """A class or function of the suite's own, already imported modules, by ``module:qualname`` (nothing is
    imported); anything else is refused."""
    module, _, qual = str(name).partition(":")
    if module.split(".")[0] not in SUITE_PACKAGES or module not in sys.modules:
        raise CheckpointError(f"checkpoint does not fit this run at {path}: it holds a {name}, the run has nothing")
    obj: Any = sys.modules[module]
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if obj is None:
        raise CheckpointError(f"checkpoint does not fit this run at {path}: {name} does not exist")
    return obj


def _new_suite_object(name: Any, path: str) -> Any:
    """An empty instance of one of the suite's own classes (no ``__init__`` runs: its attributes come from the
    checkpoint); any other class is refused."""
    obj = _suite_attr(name, path)
    if not isinstance(obj, type) or obj.__new__ is not object.__new__:
        raise CheckpointError(f"checkpoint does not fit this run at {path}: {name} is not a plain suite class")
    return object.__new__(obj)


def _hashable(k: Any) -> bool:
    try:
        hash(k)
    except TypeError:
        return False
    return True


def _need(ok: bool, path: str, what: str) -> None:
    if not ok:
        raise CheckpointError(f"checkpoint does not fit this run at {path}: expected {what}")


# ----- process-wide generators -----------------------------------------------------------------------------------
def capture_global_rngs() -> dict[str, Any]:
    """torch's, NumPy's legacy and Python's ``random`` generators (libraries may draw from them)."""
    return {"torch": torch.get_rng_state(), "numpy": capture(np.random.get_state(legacy=False)),  # noqa: NPY002
            "random": capture(random.getstate())}


def restore_global_rngs(tree: Mapping[str, Any]) -> None:
    try:
        torch.set_rng_state(tree["torch"])
        np.random.set_state(restore(None, tree["numpy"]))  # noqa: NPY002
        random.setstate(restore(None, tree["random"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint does not fit this run at global generators: {e}") from None


def check_capturable(state: Any, pool: Any) -> None:
    """Capture once before any training, so a run that cannot be checkpointed is refused up front."""
    capture(state)
    pool.capture_state()


# ----- the file ----------------------------------------------------------------------------------------------------
class Checkpointer:
    """One federation's checkpoint file: :meth:`save` after every ``every`` rounds (and the last), :meth:`load` on
    resume. ``identity`` (plain data: the run's config digest, which federation of the run) must match."""

    def __init__(self, path: Path, every: int, identity: Mapping[str, Any]) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise CheckpointError(f"checkpoint_every={every!r} is out of range; allowed: integer >= 1")
        self.path = Path(path)
        self.every = every
        self.identity = dict(identity)

    def save(self, rnd: int, tree: Any) -> None:
        buf = io.BytesIO()
        torch.save(tree, buf)
        payload = zlib.compress(buf.getvalue(), 1)  # replay buffers are preallocated: mostly zeros
        outer = {"format": FORMAT, "version": VERSION, "identity": self.identity, "round": int(rnd),
                 "sha256": hashlib.sha256(payload).hexdigest(),
                 "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(outer, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self) -> tuple[int, Any] | None:
        """``(round, tree)`` of the saved state, or ``None`` when there is no checkpoint yet."""
        if not self.path.exists():
            return None
        return read_checkpoint(self.path, self.identity)


def read_checkpoint(path: Path, identity: Mapping[str, Any] | None = None) -> tuple[int, Any]:
    """The (round, tree) in ``path``, verified; :class:`CheckpointError` (one line; the file untouched) if not."""
    name = str(path)
    try:
        outer = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any unpickling failure means an unusable file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {name!r} is corrupt, truncated or not a checkpoint ({first[:160]}); "
                              "left untouched") from None
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {name!r} is not an FRL Suite checkpoint; left untouched")
    if outer.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {name!r} has version {outer.get('version')!r}; allowed: {VERSION}")
    payload = outer.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise CheckpointError(f"checkpoint {name!r} has no payload; left untouched")
    raw = payload.numpy().tobytes()
    if hashlib.sha256(raw).hexdigest() != outer.get("sha256"):
        raise CheckpointError(f"checkpoint {name!r} fails its checksum (corrupt or edited); left untouched")
    if identity is not None and outer.get("identity") != dict(identity):
        raise CheckpointError(f"checkpoint {name!r} belongs to another run ({outer.get('identity')!r}); "
                              "left untouched")
    try:
        tree = torch.load(io.BytesIO(zlib.decompress(raw)), weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {name!r} payload does not load ({str(e).splitlines()[0][:160]})") from None
    rnd = outer.get("round")
    if isinstance(rnd, bool) or not isinstance(rnd, int) or rnd < 1:
        raise CheckpointError(f"checkpoint {name!r} has round {rnd!r}; left untouched")
    return rnd, tree
