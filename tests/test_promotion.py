"""The promotion rule and the teacher's dataset-level advantages, on hand-made cases."""

import pytest

from soar.promotion import dataset_advantages, promotion_check


def test_no_promotion_below_threshold_and_history_grows_to_window():
    history = []
    for step, rewards in enumerate([[[0.0, 0.0]], [[0.01, 0.0]], [[0.0, 0.0]], [[0.0, 0.02]]]):
        decision, history = promotion_check(rewards * 2, history, window=3, threshold=0.01)
        assert not decision.promote and decision.dataset is None
        assert len(history) == min(step + 1, 3)
    assert history == pytest.approx([0.005, 0.0, 0.01])  # R̂ of steps 2-4; step 1's left the window
    assert decision.moving_average == pytest.approx(0.015 / 3)


def test_moving_average_over_window_triggers_promotion_then_resets():
    history = [0.0, 0.03]
    rewards = [[0.0, 0.02, 0.04, 0.06], [0.1, 0.3, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0]]
    decision, history = promotion_check(rewards, history, window=3, threshold=0.01)
    # R_k = 0.03, 0.15, 0.0 -> R̂ = 0.06; R̄ = (0 + 0.03 + 0.06) / 3 = 0.03 > 0.01
    assert decision.promote and decision.moving_average == pytest.approx(0.03)
    assert decision.dataset == 1  # argmax R_k
    # rewards of dataset 1 sorted: 0.0 (j=3), 0.1 (j=0), 0.2 (j=2), 0.3 (j=1): even r -> lower middle = j=0
    assert decision.student == 0
    assert history == []  # reset after promotion


def test_window_drops_old_rewards():
    decision, history = promotion_check([[0.0], [0.0]], [1.0, 1.0, 1.0], window=3, threshold=0.5)
    assert decision.promote and decision.moving_average == pytest.approx(2 / 3)  # (1 + 1 + 0) / 3 > 0.5
    decision, history = promotion_check([[0.0], [0.0]], [1.0, 0.0, 0.0], window=3, threshold=0.5)
    assert not decision.promote  # the oldest 1.0 left the window


@pytest.mark.parametrize("student_rewards, median", [([0.3, 0.1, 0.2], 2), ([0.5], 0), ([0.4, 0.4, 0.1, 0.9, 0.2], 0)])
def test_median_student_odd_r(student_rewards, median):
    decision, _ = promotion_check([student_rewards, [-1.0] * len(student_rewards)], [], window=1, threshold=-10)
    assert decision.dataset == 0 and decision.student == median


def test_threshold_is_strict():
    decision, _ = promotion_check([[0.01], [0.01]], [], window=3, threshold=0.01)
    assert not decision.promote


def test_dataset_advantages_hand_computed():
    assert dataset_advantages([0.1, 0.0, 0.0, -0.1]) == pytest.approx([0.1 - (-0.1 / 3), 0.0, 0.0, -0.1 - 0.1 / 3])
    assert dataset_advantages([0.2, 0.2, 0.2, 0.2]) == pytest.approx([0.0] * 4)
    assert sum(dataset_advantages([0.3, -0.2, 0.05, 0.7])) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        dataset_advantages([1.0])


def test_presets_hold_the_paper_settings():
    from pathlib import Path

    from soar.loop import load_preset

    root = Path(__file__).resolve().parents[1] / "presets"
    cfg = load_preset(root / "paper_math.toml")
    assert (cfg.model, cfg.task, cfg.outer_steps) == ("meta-llama/Llama-3.2-3B-Instruct", "math", 200)
    assert (cfg.group_size, cfg.dataset_size, cfg.num_repeats, cfg.num_reward_questions) == (4, 64, 4, 64)
    assert (cfg.inner_steps, cfg.extra_inner_steps_after_promotion, cfg.promotion_threshold, cfg.window) == (10, 5, 0.01, 3)
    assert (cfg.teacher_rl.lr, cfg.teacher_rl.warmup_steps, cfg.student.rl.lr, cfg.student.rl.warmup_steps) == (1e-5, 20, 1e-5, 0)
    assert (cfg.student.batch_questions, cfg.student.group_size, cfg.generation.max_new_tokens) == (8, 32, 1024)
    assert cfg.reward_metric == "greedy" and cfg.teacher_max_new_tokens == 512 and not cfg.chat_template
    for name in ("paper_harp.toml", "qwen2.5_1.5b_math.toml"):
        assert load_preset(root / name).task == "math"


def test_preset_with_an_unknown_setting_is_refused(tmp_path):
    from soar.loop import load_preset

    bad = tmp_path / "bad.toml"
    bad.write_text("outer_stepz = 3\n")
    with pytest.raises(ValueError, match="outer_stepz"):
        load_preset(bad)
