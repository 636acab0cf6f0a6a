"""The SOAR loop end to end on the default toy world: promotion, run directory, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from soar.loop import SoarConfig, draw_reward_questions, inner_seed, run
from soar.runs import read_jsonl, read_problems
from soar.tasks import load_task


def small_config(toy_world, hard_set, out, **kw) -> SoarConfig:
    kw = {"group_size": 2, "dataset_size": 16, "num_repeats": 2, "num_reward_questions": 32,
          "reward_metric": "sampled", **kw}
    return SoarConfig(model=str(toy_world), hard_set=str(hard_set), out=str(out), **kw)


def test_forced_promotion_promotes_a_trained_copy_that_is_better(toy_world, one_carry_hard_set, tmp_path):
    from soar.evaluation import reference_logprob
    from soar.generation import HFGenerator
    from soar.models import frozen_copy, load_model, load_tokenizer
    from soar.student import train_student

    cfg = small_config(toy_world, one_carry_hard_set, tmp_path / "run", outer_steps=1, promotion_threshold=-1.0,
                       reward_metric="logprob", group_size=4, num_repeats=3)
    state = run(cfg)
    assert len(state["promotions"]) == 1
    promo = state["promotions"][0]
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")[0]
    rewards = metrics["teacher/student_rewards"]
    assert promo["dataset"] == max(range(4), key=lambda k: sum(rewards[k]))
    assert promo["reward"] == sorted(rewards[promo["dataset"]])[1]  # the median of r = 3
    promoted = read_jsonl(tmp_path / "run" / "promoted_questions.jsonl")
    step_questions = read_jsonl(tmp_path / "run" / "questions" / "step_0000.jsonl")
    dataset = [q for q in step_questions if q["dataset"] == promo["dataset"]]
    assert [q["question"] for q in promoted] == [q["question"] for q in dataset] and len(promoted) == 16

    # Retrain that copy independently: it must be exactly the promoted baseline student.
    tok = load_tokenizer(str(toy_world))
    base = load_model(str(toy_world))
    student = frozen_copy(base).requires_grad_(True)
    task = load_task("toy")
    train_student(student, frozen_copy(base), HFGenerator(student, tok), task,
                  [{"question": q["question"], "answer": q["answer"]} for q in dataset], cfg.inner_steps,
                  cfg.student, inner_seed(cfg.seed, 0, promo["dataset"], promo["student"]), tok.pad_token_id)
    promoted_model = load_model(str(tmp_path / "run" / "ckpt_0001" / "baseline_student"))
    for (name, p), q in zip(student.state_dict().items(), promoted_model.state_dict().values()):
        assert torch.equal(p, q), name

    # ... and better than the old baseline on Q_R, measured again from scratch.
    q_r, _ = draw_reward_questions(read_problems(one_carry_hard_set / "train.jsonl"), cfg, 0)
    gain = reference_logprob(promoted_model, tok, task, q_r) - reference_logprob(base, tok, task, q_r)
    assert gain == pytest.approx(promo["reward"], rel=1e-4)
    assert gain > 0  # the promoted student gives the Q_R reference answers more probability


def test_promotion_min_retention_refuses_a_student_that_loses_easy_problems(toy_world, one_carry_hard_set, tmp_path):
    from soar.loop import check
    from soar.models import load_model

    easy = str(toy_world / "easy.jsonl")
    with pytest.raises(ValueError, match="promotion_min_retention"):
        check(small_config(toy_world, one_carry_hard_set, tmp_path / "x", promotion_min_retention=0.9))
    forced = {"outer_steps": 2, "promotion_threshold": -1.0, "reward_metric": "logprob", "retention": easy,
              "inner_steps": 2, "extra_inner_steps_after_promotion": 0}

    # A bar no student can clear (twice the baseline's retention): every promotion is refused, θ stays
    # the base model, and the refused steps' rewards keep counting in the moving average.
    state = run(small_config(toy_world, one_carry_hard_set, tmp_path / "refused", promotion_min_retention=2.0, **forced))
    metrics = read_jsonl(tmp_path / "refused" / "metrics.jsonl")
    assert state["promotions"] == [] and not (tmp_path / "refused" / "promoted_questions.jsonl").exists()
    assert [m["promotion"] for m in metrics] == [False, False]
    assert all(0 <= m["promotion/candidate_retention"] <= 1 for m in metrics)
    assert metrics[1]["teacher/moving_average"] == pytest.approx(
        (metrics[0]["teacher/mean_reward"] + metrics[1]["teacher/mean_reward"]) / 2)
    kept = load_model(str(tmp_path / "refused" / "ckpt_0002" / "baseline_student")).state_dict()
    for name, w in load_model(str(toy_world)).state_dict().items():
        assert torch.equal(w, kept[name]), name

    # A bar of 0 refuses nothing: the retention measured for the candidate is the one the promoted
    # baseline shows at the next step.
    state = run(small_config(toy_world, one_carry_hard_set, tmp_path / "kept", promotion_min_retention=0.0, **forced))
    metrics = read_jsonl(tmp_path / "kept" / "metrics.jsonl")
    assert [p["step"] for p in state["promotions"]] == [0, 1]
    assert metrics[0]["promotion/candidate_retention"] == metrics[1]["student/retention"]


def _train(args, **popen):
    env = {**os.environ, "SOAR_QUIET": "1"}
    return subprocess.Popen([sys.executable, "-m", "soar.cli", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_killed_and_resumed_run_matches_uninterrupted(toy_world, one_carry_hard_set, tmp_path):
    args = ["--model", str(toy_world), "--hard-set", str(one_carry_hard_set), "--outer-steps", "4",
            "--group-size", "2", "--num-repeats", "1", "--inner-steps", "3", "--num-reward-questions", "16",
            "--reward-metric", "sampled", "--promotion-threshold", "0.0", "--window", "1"]
    full = _train([*args, "--out", str(tmp_path / "full")])
    assert full.wait(timeout=600) == 0, full.stderr.read().decode()

    killed = _train([*args, "--out", str(tmp_path / "killed")])
    state_file = tmp_path / "killed" / "state.json"
    deadline = time.time() + 600
    while not (state_file.exists() and json.loads(state_file.read_text())["step"] >= 2):
        assert killed.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)  # mid outer step 3
    killed.wait()
    assert json.loads(state_file.read_text())["step"] in (2, 3)

    resumed = _train(["--resume", str(tmp_path / "killed")])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()

    def strip_time(rows):
        return [{k: v for k, v in r.items() if k != "time"} for r in rows]
    for name in ("metrics.jsonl", "promoted_questions.jsonl"):
        a, b = tmp_path / "full" / name, tmp_path / "killed" / name
        assert a.exists() == b.exists()
        if a.exists():
            assert strip_time(read_jsonl(a)) == strip_time(read_jsonl(b)), name
    assert len(read_jsonl(tmp_path / "full" / "metrics.jsonl")) == 4
    for step in range(4):
        name = f"questions/step_{step:04d}.jsonl"
        assert (tmp_path / "full" / name).read_text() == (tmp_path / "killed" / name).read_text()
    for part in ("teacher", "baseline_student"):
        a = (tmp_path / "full" / "ckpt_0004" / part / "model.safetensors").read_bytes()
        b = (tmp_path / "killed" / "ckpt_0004" / part / "model.safetensors").read_bytes()
        assert a == b, part


def test_existing_run_is_not_overwritten(toy_world, one_carry_hard_set, tmp_path):
    cfg = small_config(toy_world, one_carry_hard_set, tmp_path / "run", outer_steps=1, inner_steps=1, num_repeats=1)
    run(cfg)
    with pytest.raises(FileExistsError, match="--resume"):
        run(cfg)
