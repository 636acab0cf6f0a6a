"""`soar demo` end to end on the tiny toy world: summary.json as documented, the report, no promotion."""

import json

import pytest

from soar.demo import DemoConfig, run_demo
from soar.loop import SoarConfig
from soar.runs import read_jsonl, read_problems

ARMS = {"base", "hard_only", "base_t", "no_selection", "soar_pq", "soar_ps", "oracle"}
KS = {"1", "4", "8", "16", "32"}


def tiny_demo(tiny_toy, tmp_path, monkeypatch, threshold: float) -> tuple[dict, DemoConfig]:
    path, toy_cfg = tiny_toy
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"toy-{toy_cfg.fingerprint()}").symlink_to(path)  # the demo finds the tiny world as a cached build
    monkeypatch.setenv("SOAR_CACHE", str(cache))
    soar = SoarConfig(model="", hard_set="", out="", outer_steps=2, group_size=2, dataset_size=4, num_repeats=1,
                      num_reward_questions=4, inner_steps=1, extra_inner_steps_after_promotion=0,
                      reward_metric="sampled", reward_samples=2, promotion_threshold=threshold)
    cfg = DemoConfig(out=str(tmp_path / "demo"), candidates=24, student_steps=2, soar=soar, toy=toy_cfg)
    return run_demo(cfg), cfg


def test_demo_writes_the_documented_summary_and_a_report(tiny_toy, tmp_path, monkeypatch):
    summary, cfg = tiny_demo(tiny_toy, tmp_path, monkeypatch, threshold=-1.0)  # every step promotes
    out = tmp_path / "demo"
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["promotions"] == 2 and summary["outer_steps"] == 2 and summary["seed"] == 0
    assert summary["hard_set"] == {"train": len(read_problems(out / "hard_set" / "train.jsonl")),
                                   "test": len(read_problems(out / "hard_set" / "test.jsonl"))}
    assert summary["hard_set"]["test"] > 0 and summary["wall_seconds"] > 0
    assert set(summary["pass_at_k"]) == ARMS
    for arm, values in summary["pass_at_k"].items():
        assert set(values) == KS, arm  # a run that promoted has every arm, PS, PQ and no-selection included
        assert 0.0 <= values["1"] <= values["4"] <= values["8"] <= values["16"] <= values["32"] <= 100.0, arm
    assert len(read_jsonl(out / "soar" / "promoted_questions.jsonl")) == 2 * cfg.soar.dataset_size
    report = (out / "report.md").read_text()
    assert "2 promotion(s)" in report and "| SOAR-PQ | " in report and "No promotion" not in report
    for png in ("pass_at_k.png", "teacher_reward.png"):
        assert (out / png).stat().st_size > 0


def test_demo_without_a_promotion_reports_it_and_leaves_ps_and_pq_out(tiny_toy, tmp_path, monkeypatch):
    summary, _ = tiny_demo(tiny_toy, tmp_path, monkeypatch, threshold=1e9)  # no moving average passes τ
    assert summary["promotions"] == 0
    assert summary["pass_at_k"]["soar_pq"] is None and summary["pass_at_k"]["soar_ps"] is None
    assert summary["pass_at_k"]["no_selection"] is None
    assert set(summary["pass_at_k"]["oracle"]) == KS and set(summary["pass_at_k"]["base_t"]) == KS
    report = (tmp_path / "demo" / "report.md").read_text()
    rewards = [r for m in read_jsonl(tmp_path / "demo" / "soar" / "metrics.jsonl") for r in m["teacher/dataset_rewards"]]
    zero = sum(r == 0 for r in rewards)
    assert "## No promotion" in report and f"{zero} of {len(rewards)} dataset rewards were exactly 0" in report


@pytest.mark.parametrize("rewards, metric, hint", [([0.0, 0.0], "sampled", True), ([0.0, 0.0], "logprob", False),
                                                   ([0.1, -0.2], "sampled", False)])
def test_no_promotion_note_points_to_the_dense_reward_only_where_rewards_were_zero(rewards, metric, hint):
    from soar.report import no_promotion_note

    lines = no_promotion_note([{"teacher/dataset_rewards": rewards}], metric)
    text = "\n".join(lines)
    assert f"{sum(r == 0 for r in rewards)} of 2 dataset rewards were exactly 0" in text
    assert ("dense reward" in text) == hint
