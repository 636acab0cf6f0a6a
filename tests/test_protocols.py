"""The PQ protocol's checkpoint rule and schedules, and teacher sampling on a tiny toy world."""

import json
import math
import shutil

import pytest

from soar.baselines import FreshStudentConfig, moving_average, normalised_slope, slope_checkpoint, slope_rule_score
from soar.student import StudentConfig, extra_count


# ---------------------------------------------------------------- slope rule (pure)

def test_moving_average_is_centred_and_clipped_at_the_ends():
    assert moving_average([0, 0, 3, 0, 0], 3) == [0, 1, 1, 1, 0]
    assert moving_average([1, 2, 3, 4], 25) == [2.5] * 4  # a curve shorter than the window: its mean
    assert moving_average([], 25) == []


def test_normalised_slope_divides_by_the_reward_range():
    slope = normalised_slope([0, 10, 20, 30], window=1)  # no smoothing, range 30
    assert slope == pytest.approx([1 / 3] * 4)
    assert normalised_slope([5, 5, 5], window=1) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("rewards, expected", [
    # A step from 0 to 1 at step 50. The 25-step window (12 either side) turns it into a ramp over
    # steps 38-62 whose central-difference slope is 1/25 (normalised: range 1) from step 38 on; at 62
    # it is half that, at 63 zero: the first step below 15% of the maximum is 63.
    ([0.0] * 50 + [1.0] * 100, 63),
    # A linear ramp (0 to 1 over steps 0-100), then flat. Past step 88 the window leaves the ramp and
    # the slope at i is (225 - 2i)/5000 against a maximum of 50/5000: below 15% from i = 109.
    ([min(i, 100) / 100 for i in range(250)], 109),
    # Scaling the rewards does not move the checkpoint (the slope is normalised by the range).
    ([3.0 + 0.02 * min(i, 100) for i in range(250)], 109),
    # Flat (a fail@k plateau: reward 0 every step): it never rose, so step 0.
    ([0.0] * 80, 0),
    # Only falling: the slope is never positive, step 0.
    ([1 - 0.01 * i for i in range(50)], 0),
    # Still rising at the end: the slope never drops below the threshold, the last step.
    ([float(i) for i in range(30)], 29),
    # Short curves: one step, no steps.
    ([0.5], 0),
    ([], 0),
])
def test_slope_checkpoint_on_curves_with_known_answers(rewards, expected):
    assert slope_checkpoint(rewards) == expected


def test_slope_checkpoint_on_a_saturating_curve():
    # 1 - exp(-t/20): the smoothed slope is proportional to exp(-t/20) once the window is full (from
    # step ~12, where it peaks), so it falls below 15% of the peak about 20·ln(1/0.15) = 38 steps later.
    rewards = [1 - math.exp(-t / 20) for t in range(300)]
    assert 12 + 37 <= slope_checkpoint(rewards) <= 12 + 40
    # A larger fraction stops earlier: 50% after 20·ln 2 = 14 steps.
    assert 12 + 12 <= slope_checkpoint(rewards, fraction=0.5) <= 12 + 16


def test_slope_rule_score_averages_the_evaluations_in_the_window():
    curve = [{"step": s, "pass_at_k": {"1": float(s), "4": 2.0 * s}, "retention": 1 - s / 100} for s in (0, 20, 40, 60, 80)]
    score = slope_rule_score(curve, checkpoint=15, average_window=30)  # steps 15..45: evaluations 20 and 40
    assert score["steps"] == [20, 40]
    assert score["pass_at_k"] == {"1": 30.0, "4": 60.0}
    assert score["retention"] == pytest.approx(0.7)
    assert slope_rule_score(curve, 0, 200)["steps"] == [0, 20, 40, 60, 80]
    # Evaluations sparser than the window: the first one after the checkpoint.
    assert slope_rule_score(curve, checkpoint=61, average_window=5)["steps"] == [80]
    no_retention = [{k: v for k, v in p.items() if k != "retention"} for p in curve]
    assert slope_rule_score(no_retention, 0, 10)["retention"] is None


# ---------------------------------------------------------------- schedules

@pytest.mark.parametrize("step, schedule, problems, extra, expected", [
    (0, "mixed", 10, 10, 6),        # round(8 · 0.75)
    (99, "mixed", 10, 10, 6),
    (0, "curriculum", 10, 10, 8),   # extra only during the first curriculum_steps = 3 steps
    (2, "curriculum", 10, 10, 8),
    (3, "curriculum", 10, 10, 0),   # then D_train only
    (0, "mixed", 10, 0, 0),         # no extra problems: D_train throughout, whatever the schedule
    (0, "curriculum", 10, 0, 0),
    (5, "curriculum", 0, 10, 8),    # no D_train: extra throughout
])
def test_extra_count(step, schedule, problems, extra, expected):
    assert extra_count(step, StudentConfig(batch_questions=8), schedule, 3, problems, extra) == expected


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown schedule 'warmup'"):
        extra_count(0, StudentConfig(), "warmup", 3, 10, 10)


def test_curriculum_trains_on_extra_problems_only_then_on_d_train(tiny_toy):
    from soar.generation import HFGenerator
    from soar.models import frozen_copy, load_model, load_tokenizer
    from soar.runs import read_problems
    from soar.student import train_student
    from soar.tasks import load_task

    toy_dir, _ = tiny_toy
    task, tok = load_task("toy"), load_tokenizer(str(toy_dir))
    model = load_model(str(toy_dir)).requires_grad_(True)
    hard = read_problems(toy_dir / "hard_candidates.jsonl")
    extra = read_problems(toy_dir / "oracle_curriculum.jsonl")

    class Recording:
        """Passes generation through and records the prompts of every call (one call per RLOO step)."""

        def __init__(self, inner):
            self.inner, self.calls = inner, []

        def generate(self, prompts, n=1, **kw):
            self.calls.append(list(prompts))
            return self.inner.generate(prompts, n, **kw)

    prompt_of = lambda problems: {task.student_prompt(p["question"]) for p in problems}  # noqa: E731
    gen = Recording(HFGenerator(model, tok))
    cfg = StudentConfig(batch_questions=3, group_size=2)
    train_student(model, frozen_copy(model), gen, task, hard, 5, cfg, 0, tok.pad_token_id, extra=extra,
                  schedule="curriculum", curriculum_steps=2)
    assert len(gen.calls) == 5 and all(len(c) == 3 for c in gen.calls)
    assert all(set(c) <= prompt_of(extra) for c in gen.calls[:2])
    assert all(set(c) <= prompt_of(hard) for c in gen.calls[2:])

    gen.calls.clear()
    train_student(model, frozen_copy(model), gen, task, hard, 2, cfg, 0, tok.pad_token_id, extra=extra)  # mixed
    assert all(len(set(c) & prompt_of(extra)) == 2 and len(set(c) & prompt_of(hard)) == 1 for c in gen.calls)
    with pytest.raises(ValueError, match="unknown schedule"):
        train_student(model, frozen_copy(model), gen, task, hard, 2, cfg, 0, tok.pad_token_id, schedule="bogus")


# ---------------------------------------------------------------- teacher sampling

def hard_set_dir(toy_dir, path, num_test):
    """A hard-set directory of the toy world's hard candidates: 6 in train.jsonl, `num_test` in test.jsonl."""
    from soar.runs import read_problems, write_jsonl

    candidates = read_problems(toy_dir / "hard_candidates.jsonl")
    write_jsonl(path / "train.jsonl", candidates[:6])
    write_jsonl(path / "test.jsonl", candidates[6:6 + num_test])
    return path


def test_teacher_sampling_from_a_run_directory(tiny_toy, tmp_path):
    from soar.protocols import teacher_model_dir, teacher_sampling
    from soar.runs import read_jsonl, read_problems

    toy_dir, _ = tiny_toy
    hard = hard_set_dir(toy_dir, tmp_path / "hard", num_test=6)
    # A SOAR run directory as the loop leaves it: state.json names the latest checkpoint, whose teacher
    # holds weights only (no tokenizer).
    run = tmp_path / "run"
    (run / "ckpt_0003" / "teacher").mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        if (toy_dir / name).exists():
            shutil.copy(toy_dir / name, run / "ckpt_0003" / "teacher" / name)
    (run / "state.json").write_text(json.dumps({"step": 3, "history": [], "promotions": [], "checkpoint": "ckpt_0003"}))
    assert teacher_model_dir(run) == str(run / "ckpt_0003" / "teacher")
    assert teacher_model_dir(toy_dir) == str(toy_dir)

    cfg = FreshStudentConfig(model=str(toy_dir), hard_set=str(hard), out=str(tmp_path / "ts"), steps=3, eval_every=1,
                             eval_samples=4, retention=str(toy_dir / "easy.jsonl"),
                             student=StudentConfig(batch_questions=2, group_size=4), schedule="curriculum",
                             curriculum_steps=2, average_window=1)
    result = teacher_sampling(run, cfg, num_questions=5, log=lambda *_: None)
    questions = read_problems(tmp_path / "ts" / "teacher_questions.jsonl")
    assert len(questions) == 5 and result["num_extra"] == 5
    assert result["teacher"] == str(run / "ckpt_0003" / "teacher") and result["schedule"] == "curriculum"
    assert json.loads((tmp_path / "ts" / "result.json").read_text())["teacher_rejections"] == result["teacher_rejections"]
    # The slope rule is read from the recorded curve; the final score is left as it was.
    curve = read_jsonl(tmp_path / "ts" / "curve.jsonl")
    assert [p["step"] for p in curve] == [0, 1, 2, 3] and result["pass_at_k"] == curve[-1]["pass_at_k"]
    assert 0 <= result["slope_checkpoint"] < 3 and len(result["train_reward"]) == 3
    expected = slope_rule_score(curve, result["slope_checkpoint"], 1)
    assert result["slope_rule_steps"] == expected["steps"] == [result["slope_checkpoint"], result["slope_checkpoint"] + 1]
    assert result["pass_at_k_slope_rule"] == expected["pass_at_k"]
    assert result["retention_slope_rule"] == expected["retention"]

    from soar.cli import main
    assert main(["teacher-sampling", "--teacher", str(run), "--num-questions", "3", "--run.model", str(toy_dir),
                 "--run.hard-set", str(hard), "--run.out", str(tmp_path / "cli"), "--run.steps", "1",
                 "--run.eval-samples", "4", "--run.student.batch-questions", "2", "--run.student.group-size", "4"]) == 0
    assert len(read_problems(tmp_path / "cli" / "teacher_questions.jsonl")) == 3
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["teacher"] == str(run)


# ---------------------------------------------------------------- PS controls: no-selection and replayed

def test_replayed_and_no_selection_retrace_one_inner_loop_per_promotion(tiny_toy, tmp_path, monkeypatch):
    import soar.protocols as protocols
    from soar.loop import SoarConfig
    from soar.runs import read_problems, write_jsonl

    toy_dir, _ = tiny_toy
    hard = hard_set_dir(toy_dir, tmp_path / "hard", num_test=3)
    run = tmp_path / "run"
    run.mkdir()
    curriculum = read_problems(toy_dir / "oracle_curriculum.jsonl")
    # Two promotions (steps 1 and 4, datasets 2 and 0); the promoted questions as the loop appends them.
    promoted = ([{**p, "step": 1, "dataset": 2} for p in curriculum[:3]] +
                [{**p, "step": 4, "dataset": 0} for p in curriculum[3:6]])
    write_jsonl(run / "promoted_questions.jsonl", promoted)
    (run / "state.json").write_text(json.dumps({"step": 5, "history": [], "checkpoint": "ckpt_0005", "promotions": [
        {"step": 1, "dataset": 2, "student": 0, "reward": 0.5}, {"step": 4, "dataset": 0, "student": 1, "reward": 0.4}]}))
    run_cfg = SoarConfig(model=str(toy_dir), hard_set=str(hard), out=str(run), dataset_size=4, inner_steps=2,
                         extra_inner_steps_after_promotion=1, student=StudentConfig(batch_questions=2, group_size=2))
    cfg = FreshStudentConfig(model=str(toy_dir), hard_set=str(hard), out=str(tmp_path / "cell"), eval_samples=4,
                             retention=str(toy_dir / "easy.jsonl"))
    calls = []
    real = protocols.train_student

    def recording(student, reference, gen, task, dataset, steps, *args):
        calls.append(([p["question"] for p in dataset], steps, id(student)))
        return real(student, reference, gen, task, dataset, steps, *args)

    monkeypatch.setattr(protocols, "train_student", recording)
    quiet = lambda *_: None  # noqa: E731
    result = protocols.replayed_promotions(run_cfg, cfg, log=quiet)
    # The promoted datasets, in promotion order, K steps then K + extra, on one student.
    assert [(q, steps) for q, steps, _ in calls] == [([p["question"] for p in curriculum[:3]], 2),
                                                     ([p["question"] for p in curriculum[3:6]], 3)]
    assert calls[0][2] == calls[1][2]
    assert result["inner_loops"] == 2 and set(result["pass_at_k"]) == {"1", "4"} and 0 <= result["retention"] <= 1
    assert json.loads((tmp_path / "cell" / "result.json").read_text())["pass_at_k"] == result["pass_at_k"]

    calls.clear()
    result = protocols.no_selection(run_cfg, cfg, log=quiet)
    # Random untrained-teacher datasets of the run's dataset size instead, same step counts.
    assert [steps for _, steps, _ in calls] == [2, 3] and all(len(q) == 4 for q, _, _ in calls)
    assert not {q for qs, _, _ in calls for q in qs} <= {p["question"] for p in promoted}
    assert result["inner_loops"] == 2

    (run / "state.json").write_text(json.dumps({"step": 5, "history": [], "promotions": [], "checkpoint": "ckpt_0005"}))
    assert protocols.replayed_promotions(run_cfg, cfg, log=quiet) is None
    assert protocols.no_selection(run_cfg, cfg, log=quiet) is None


def test_ps_takes_the_best_greedy_student_and_breaks_ties_by_reference_logprob(tiny_toy, tmp_path, monkeypatch):
    import torch

    import soar.protocols as protocols
    from soar.evaluation import reference_logprob
    from soar.loop import SoarConfig
    from soar.models import load_model, load_tokenizer
    from soar.runs import read_problems
    from soar.tasks import load_task

    toy_dir, _ = tiny_toy
    hard = hard_set_dir(toy_dir, tmp_path / "hard", num_test=3)
    run = tmp_path / "run"
    noisy = load_model(str(toy_dir))
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for p in noisy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    noisy.save_pretrained(run / "promoted" / "step_0001")
    for name in ("step_0002", "step_0003"):  # the same weights twice: a full tie
        load_model(str(toy_dir)).save_pretrained(run / "promoted" / name)
    run_cfg = SoarConfig(model=str(toy_dir), hard_set=str(hard), out=str(run))
    cfg = FreshStudentConfig(model=str(toy_dir), hard_set=str(hard), out=str(tmp_path / "cell"), eval_samples=4)
    quiet = lambda *_: None  # noqa: E731
    train, task, tok = read_problems(hard / "train.jsonl"), load_task("toy"), load_tokenizer(str(toy_dir))
    best = reference_logprob(load_model(str(toy_dir)), tok, task, train)
    assert reference_logprob(noisy, tok, task, train) < best - 1  # the noisy student is clearly worse

    result = protocols.promoted_student(run_cfg, cfg, log=quiet)
    # No student solves a D_train problem greedily: the tie goes to the best log-probability, then the earliest.
    assert result["train_greedy_accuracy"] == 0.0 and result["candidates"] == 3
    assert result["student"] == "step_0002" and result["train_reference_logprob"] == pytest.approx(best, rel=1e-5)

    calls = []
    real = protocols.greedy_accuracy

    def first_solves_one(gen, task, problems):
        calls.append(1)
        return 1 / 6 if len(calls) == 1 else real(gen, task, problems)

    monkeypatch.setattr(protocols, "greedy_accuracy", first_solves_one)
    assert protocols.promoted_student(run_cfg, cfg, log=quiet)["student"] == "step_0001"  # greedy accuracy first
