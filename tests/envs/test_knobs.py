"""The knob machinery over every registered env: declarations, the one validator, the one override path.

Every config field of every registered env must be a declared knob whose default is legal and which names a
unit and a source; out-of-range, wrong-type and unknown overrides fail with one ``EnvConfigError`` line that
names the knob; and (property) any value inside a numeric knob's declared range passes the shared check
while any value outside it is rejected by the config itself.
"""

import copy
import dataclasses
import importlib
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.knobs import (
    METADATA_KEY,
    Knob,
    apply_overrides,
    knob,
    knob_records,
    knob_spec,
    knob_table,
    validate_knobs,
)
from envs.registry import EnvConfigError

CONFIGS = sorted({e.config_cls for e in envs.ENV_ENTRIES.values()}, key=lambda c: c.__name__)
IDS = [c.__name__ for c in CONFIGS]
NUMERIC = [(c, f.name) for c in CONFIGS for f in dataclasses.fields(c)
           if f.metadata[METADATA_KEY].kind in ("int", "float")]


def _one_line_naming(exc: pytest.ExceptionInfo, *names: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    for name in names:
        assert name in msg, (name, msg)
    return msg


@pytest.mark.parametrize("cls", CONFIGS, ids=IDS)
def test_every_field_is_a_declared_knob_with_a_legal_default_unit_and_source(cls):
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(METADATA_KEY)
        assert isinstance(spec, Knob), f"{cls.__name__}.{f.name} is not declared with knob()"
        assert spec.unit and spec.source, f.name
        spec.validate(f.name, f.default)
        if spec.kind in ("int", "float"):
            assert spec.low <= f.default <= spec.high, f.name
    validate_knobs(cls())


@pytest.mark.parametrize("cls", CONFIGS, ids=IDS)
def test_generated_table_and_records_list_every_knob(cls):
    records = knob_records(cls)
    json.dumps(records)                                          # JSON-ready for `frl list --json`
    names = [f.name for f in dataclasses.fields(cls)]
    assert [r["name"] for r in records] == names
    table = knob_table(cls).splitlines()
    assert len(table) == 2 + len(names)
    for name, row in zip(names, table[2:], strict=True):
        assert row.startswith(f"| `{name}` |")


@pytest.mark.parametrize("entry", list(envs.ENV_ENTRIES.values()), ids=list(envs.ENV_ENTRIES))
def test_module_docstring_carries_the_generated_table(entry):
    module = importlib.import_module(entry.entry_point.partition(":")[0])
    assert knob_table(entry.config_cls) in module.__doc__


@pytest.mark.parametrize(("cls", "name"), NUMERIC, ids=[f"{c.__name__}.{n}" for c, n in NUMERIC])
def test_out_of_range_and_wrong_type_overrides_name_the_knob(cls, name):
    spec = knob_spec(cls, name)
    base = cls()
    for bad in (spec.high + (1 if spec.kind == "int" else abs(spec.high) + 1.0),
                spec.low - (1 if spec.kind == "int" else abs(spec.low) + 1.0)):
        with pytest.raises(EnvConfigError) as exc:
            apply_overrides(base, {name: bad})
        _one_line_naming(exc, f"{name}={bad!r}", f"[{spec.low}, {spec.high}]")
    for bad in (True, "1", None) + ((float(getattr(base, name)),) if spec.kind == "int" else (math.nan,)):
        with pytest.raises(EnvConfigError) as exc:
            apply_overrides(base, {name: bad})
        _one_line_naming(exc, f"{name}={bad!r}")


@pytest.mark.parametrize("cls", CONFIGS, ids=IDS)
def test_unknown_override_is_named_with_the_allowed_knobs(cls):
    with pytest.raises(EnvConfigError) as exc:
        apply_overrides(cls(), {"no_such_knob": 1})
    _one_line_naming(exc, "no_such_knob", *[f.name for f in dataclasses.fields(cls)])


@pytest.mark.parametrize("entry", list(envs.ENV_ENTRIES.values()), ids=list(envs.ENV_ENTRIES))
def test_env_constructor_overrides_go_through_the_same_path(entry):
    import gymnasium as gym

    with pytest.raises(EnvConfigError, match="no_such_knob"):
        gym.make(entry.env_id, no_such_knob=1)
    name = next(n for c, n in NUMERIC if c is entry.config_cls)
    bad = knob_spec(entry.config_cls, name).high + 1
    with pytest.raises(EnvConfigError, match=f"{name}={bad!r}"):
        gym.make(entry.env_id, **{name: bad})


def test_apply_overrides_keeps_unchanged_configs_and_turns_lists_into_tuples():
    from envs.cv2x import CV2XConfig

    base = CV2XConfig()
    assert apply_overrides(base, {}) is base
    cfg = apply_overrides(base, {"v2v_power_levels_dbm": [23.0, 5.0]})
    assert cfg.v2v_power_levels_dbm == (23.0, 5.0)
    with pytest.raises(EnvConfigError, match=r"v2v_power_levels_dbm=\(23.0, 99.0\)"):
        apply_overrides(base, {"v2v_power_levels_dbm": (23.0, 99.0)})
    with pytest.raises(EnvConfigError, match="scenario='rural'.*urban, highway"):
        apply_overrides(base, {"scenario": "rural"})


def test_knob_declaration_rejects_an_illegal_default():
    with pytest.raises(EnvConfigError):
        knob(5, 0, 3, unit="-", source="test", integer=True)
    with pytest.raises(ValueError):
        knob(1.0, unit="-", source="test")                         # a number needs a range


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NUMERIC), st.floats(0.0, 1.0), st.data())
def test_in_range_values_pass_and_out_of_range_values_fail(case, u, data):
    cls, name = case
    spec = knob_spec(cls, name)
    if spec.kind == "int":
        value = data.draw(st.integers(int(spec.low), int(spec.high)))
        outside = data.draw(st.one_of(st.integers(max_value=int(spec.low) - 1),
                                      st.integers(min_value=int(spec.high) + 1)))
    else:
        value = min(max(spec.low + u * (spec.high - spec.low), spec.low), spec.high)
        span = max(abs(spec.high - spec.low), 1.0)
        outside = data.draw(st.one_of(st.floats(spec.low - 1e6 * span, spec.low, exclude_max=True),
                                      st.floats(spec.high, spec.high + 1e6 * span, exclude_min=True),
                                      st.just(math.inf), st.just(-math.inf)))
    cfg = copy.copy(cls())                                        # the shared validator accepts the value
    object.__setattr__(cfg, name, value)                          # (cross-knob constraints are not its job)
    validate_knobs(cfg)
    object.__setattr__(cfg, name, np.int64(value) if spec.kind == "int" else np.float64(value))
    validate_knobs(cfg)
    object.__setattr__(cfg, name, outside)
    with pytest.raises(EnvConfigError):
        validate_knobs(cfg)
    with pytest.raises(EnvConfigError) as exc:
        apply_overrides(cls(), {name: outside})
    _one_line_naming(exc, f"{name}={outside!r}")
