"""The heterogeneity spread of the robot's speed stays within the TurtleBot3 Burger's spec (issue 10).

ROBOTIS e-Manual, TurtleBot3 specifications: Burger maximum translational velocity 0.22 m/s and maximum
rotational velocity 2.84 rad/s. ``make_client_configs`` must never build a client faster than that (nor faster
than a faster base robot the user configured), at any heterogeneity and seed.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.robot_navigation import RobotNavigationConfig, make_client_configs, make_discrete_client_configs
from envs.robot_navigation.config import BURGER_V_MAX, BURGER_W_MAX

TOL = 1e-12


@settings(max_examples=60, deadline=None)
@given(h=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12),
       discrete=st.booleans())
def test_no_client_exceeds_the_burger_spec(h, seed, n, discrete):
    make = make_discrete_client_configs if discrete else make_client_configs
    for c in make(n, h, seed):
        assert 0.0 < c.v_max <= BURGER_V_MAX + TOL
        assert 0.0 < c.w_max <= BURGER_W_MAX + TOL
        assert c.discrete_linear_vel <= c.v_max and c.discrete_max_angular_vel <= c.w_max


@settings(max_examples=30, deadline=None)
@given(h=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1), v0=st.floats(0.16, 0.5))
def test_a_faster_base_robot_is_not_exceeded_either(h, seed, v0):
    base = RobotNavigationConfig(v_max=v0)
    v = np.array([c.v_max for c in make_client_configs(8, h, seed, base=base)])
    assert (v <= max(BURGER_V_MAX, v0) + TOL).all()


def test_the_speed_spread_is_kept_and_not_piled_at_the_cap():
    v = np.array([c.v_max for c in make_client_configs(64, 1.0, 5)])
    assert v.max() <= BURGER_V_MAX
    assert v.min() < 0.75 * BURGER_V_MAX                      # still a spread of robot speeds at h = 1
    assert (v == BURGER_V_MAX).sum() <= 2                      # shifted down, not clipped at the cap
    v_half = np.array([c.v_max for c in make_client_configs(64, 0.5, 5)])
    assert v_half.min() > v.min() and (v_half <= BURGER_V_MAX).all()
    assert all(c.v_max == BURGER_V_MAX for c in make_client_configs(3, 0.0, 5))   # h = 0: the Burger itself
