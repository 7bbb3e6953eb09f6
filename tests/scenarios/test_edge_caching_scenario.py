"""The edge-caching scenario: every method scored, KPIs in range, the Belady bound on the scored episodes."""

import dataclasses
import json

import torch

from envs.edge_caching import ENTRY, EdgeCachingConfig
from scenarios import SCENARIOS, edge_caching
from scenarios.experiment import _config_dict
from scenarios.results import RESULT_FILES, prepare_out_dir, write_results

torch.set_num_threads(1)


def test_edge_caching_quick_run_is_complete_and_sane(tmp_path):
    assert SCENARIOS["edge-caching"] is edge_caching
    assert edge_caching.FULL.agent_config["dueling"] is True
    exp = dataclasses.replace(edge_caching.QUICK, n_clients=2, rounds=2, steps_per_round=300, eval_every=2,
                              env_overrides={"episode_requests": 1500, "warmup_requests": 2000})
    res = edge_caching.run(exp)

    methods = {"fedavg", "local", *ENTRY.baselines}
    assert set(res.methods) == methods
    cfg = EdgeCachingConfig()
    for name, m in res.methods.items():
        assert 0.0 <= m["hit"] <= 1.0 and 0.0 <= m["neighbor_hit"] <= 1.0 - m["hit"] + 1e-9, name
        assert cfg.local_delay_ms <= m["delay"] <= cfg.cloud_delay_ms, name
        assert len(m["per_client_return"]) == 2
    assert res.methods["local"]["bytes_communicated"] == 0 < res.methods["fedavg"]["bytes_communicated"]

    # the bound is computed on the very clients and episodes the methods were scored on
    configs, final = edge_caching.final_eval_setup(exp)
    assert [_config_dict(c) for c in configs] == res.client_configs
    bound = res.extra["belady_hit_bound"]
    assert len(bound["per_client"]) == 2
    per_client_hit: dict[str, dict[int, float]] = {}
    for method, rnd, client, metric, value in res.rows:
        if rnd == exp.rounds + 1 and metric in ("final/hit", "final/own/hit", "final/global/hit"):
            per_client_hit.setdefault(method, {})[client] = value
    assert set(per_client_hit) == methods
    for method, hits in per_client_hit.items():
        for client, h in hits.items():  # no policy beats unrestricted MIN with bypass
            assert h <= bound["per_client"][client] + 1e-9, (method, client)
    # clairvoyance helps: the restricted Belady beats LRU, FIFO and random on hits
    for name in ("lru", "fifo", "random"):
        assert res.methods["belady"]["hit"] > res.methods[name]["hit"]
    assert 0.0 < bound["hit_share_of_bound"]["belady"] <= 1.0

    out = prepare_out_dir(tmp_path / "ec")
    write_results(out, res)
    for f in ("config.json", "metrics.csv", "summary.json", "summary.md", "learning_curves.png"):
        assert f in RESULT_FILES and (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == methods and "belady_hit_bound" in summary
