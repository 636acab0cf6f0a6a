"""Executors, LoRA students and the loop's baselines (Intrinsic-T, no promotion) on the default toy world."""

import pytest
import torch

from soar.evaluation import reference_logprob
from soar.executors import InnerLoop, InnerLoopWorker
from soar.loop import SoarConfig, draw_reward_questions, run
from soar.lora import LoraSettings, base_weights
from soar.models import load_model, load_tokenizer
from soar.promotion import learnability
from soar.rl import RLConfig
from soar.runs import read_jsonl, read_problems
from soar.student import StudentConfig
from soar.tasks import load_task


@pytest.fixture(scope="module")
def one_carry(one_carry_hard_set):
    return read_problems(one_carry_hard_set / "train.jsonl"), one_carry_hard_set


def config(toy_world, hard_set, out, **kw) -> SoarConfig:
    kw = {"group_size": 2, "dataset_size": 8, "num_repeats": 2, "num_reward_questions": 16, "inner_steps": 2,
          "reward_metric": "sampled", "reward_samples": 4, **kw}
    return SoarConfig(model=str(toy_world), hard_set=str(hard_set), out=str(out), **kw)


def test_learnability_reward():
    assert learnability([0, 0], 32) == 0.0  # never solved: nothing to learn
    assert learnability([32], 32) == 0.0  # always solved: nothing to learn
    assert learnability([8, 0, 16, 32], 32) == pytest.approx((0.75 + 0 + 0.5 + 0) / 4)
    with pytest.raises(ValueError):
        learnability([], 32)


def _gain(worker, rows, q_r, seeds=(0, 1, 2)) -> float:
    """Gain in log-probability of the Q_R reference answers after a 10-step inner loop on `rows`, averaged
    over `seeds`: one loop's gain hangs on its few lucky samples (0.07 to 0.69 for full fine-tuning
    over seeds 0-2 on one build of the toy model)."""
    base = reference_logprob(load_model(worker.cfg.model), worker.tokenizer, worker.task, q_r)
    gains = []
    for seed in seeds:
        worker.run(InnerLoop(0, seed, seed=seed, dataset=rows, steps=10, reward_questions=q_r, acc_seed=0))
        gains.append(reference_logprob(worker.student, worker.tokenizer, worker.task, q_r) - base)
    return sum(gains) / len(gains)


def test_lora_student_improves_like_full_fine_tuning_and_resets_without_a_model_copy(toy_world, one_carry):
    rows, hard = one_carry
    train, q_r = rows[:16], rows[16:48]
    full = InnerLoopWorker(config(toy_world, hard, "", reward_metric="logprob", device="cpu"))
    lora = InnerLoopWorker(config(toy_world, hard, "", reward_metric="logprob", device="cpu",
                                  student_lora=LoraSettings(rank=8),
                                  student=StudentConfig(rl=RLConfig(lr=1e-3))))
    full_gain, lora_gain = _gain(full, train, q_r), _gain(lora, train, q_r)
    print(f"Q_R log-prob gain after 10 steps, mean of 3 seeds: full {full_gain:.2f}, LoRA rank 8 {lora_gain:.2f}")
    assert full_gain > 0.2 and lora_gain > 0.5 * full_gain, (full_gain, lora_gain)  # measured: 0.49 and 0.74

    # The LoRA reset state is the adapter alone, and training never touched the frozen base.
    params = sum(p.numel() for p in lora.student.parameters())
    adapter = sum(v.numel() for v in lora.start.values())
    print(f"LoRA reset copies {adapter} of {params} weights")
    assert adapter < 0.1 * params
    base = load_model(str(toy_world)).state_dict()
    assert all(torch.equal(v, base[k]) for k, v in base_weights(lora.student).items())
    # Each loop starts from the fresh adapter: the same loop after another one trains the same student.
    loop = dict(dataset=train[:4], steps=2, reward_questions=q_r[:4], acc_seed=0)
    first = lora.run(InnerLoop(0, 0, seed=1, **loop))
    lora.run(InnerLoop(0, 1, seed=2, **loop))
    again = lora.run(InnerLoop(0, 2, seed=1, **loop))
    assert first == again
    assert all(torch.equal(v, lora.trained[(0, 2)][k]) for k, v in lora.trained[(0, 0)].items())
    assert not all(torch.equal(v, lora.trained[(0, 1)][k]) for k, v in lora.trained[(0, 0)].items())


def test_lora_run_promotes_a_merged_student(toy_world, one_carry, tmp_path):
    _, hard = one_carry
    cfg = config(toy_world, hard, tmp_path / "run", outer_steps=2, promotion_threshold=-1e9, window=1,
                 reward_metric="logprob", student_lora=LoraSettings(rank=4), teacher_lora=LoraSettings(rank=4),
                 student=StudentConfig(rl=RLConfig(lr=1e-3)))
    state = run(cfg)
    assert len(state["promotions"]) == 2
    tok, task = load_tokenizer(str(toy_world)), load_task("toy")
    promoted = load_model(str(tmp_path / "run" / "promoted" / "step_0000"))
    base = load_model(str(toy_world))
    # θ' = base + the promoted adapter, merged: it scores on Q_R what the adapter scored in the loop.
    q_r, _ = draw_reward_questions(read_problems(hard / "train.jsonl"), cfg, 0)
    gain = reference_logprob(promoted, tok, task, q_r) - reference_logprob(base, tok, task, q_r)
    assert gain == pytest.approx(state["promotions"][0]["reward"], rel=1e-3, abs=1e-3)
    # The teacher checkpoint is an adapter, and the run resumes from it.
    assert (tmp_path / "run" / "ckpt_0002" / "teacher" / "adapter_model.safetensors").exists()
    more = run(SoarConfig(**{**cfg.__dict__, "outer_steps": 3}), resume=True)
    assert more["step"] == 3


def test_intrinsic_teacher_and_no_promotion(toy_world, one_carry, tmp_path):
    _, hard = one_carry
    intrinsic = run(config(toy_world, hard, tmp_path / "intrinsic", outer_steps=2, promotion_threshold=-1e9,
                           teacher_reward="intrinsic", intrinsic_samples=8))
    assert intrinsic["promotions"] == []
    for row in read_jsonl(tmp_path / "intrinsic" / "metrics.jsonl"):
        assert all(0.0 <= r <= 1.0 for r in row["teacher/dataset_rewards"]) and not row["promotion"]
        assert all(len(r) == 1 for r in row["teacher/student_rewards"])

    frozen = run(config(toy_world, hard, tmp_path / "frozen", outer_steps=2, promotion_threshold=-1e9, window=2,
                        promote=False))
    assert frozen["promotions"] == [] and len(frozen["history"]) == 2
    assert not (tmp_path / "frozen" / "promoted_questions.jsonl").exists()

    noise = run(config(toy_world, hard, tmp_path / "random", outer_steps=1, promotion_threshold=-1e9,
                       teacher_reward="random"))
    row = read_jsonl(tmp_path / "random" / "metrics.jsonl")[0]
    assert noise["promotions"] == [] and len(set(row["teacher/dataset_rewards"])) == 2
    # Every step logs its questions' diagnostics, and the toy world's truth about them.
    assert row["questions"]["count"] == 16 and row["questions"]["vendi"] >= 1.0
    assert 0.0 <= row["questions/truth"]["stepping_stone"] <= row["questions/truth"]["correct"] <= 1.0


def test_ray_executor_matches_local(toy_world, one_carry, tmp_path):
    ray = pytest.importorskip("ray")
    _, hard = one_carry
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray workers use one thread each: the same arithmetic
    try:
        common = {"outer_steps": 2, "promotion_threshold": -1e9, "window": 1, "device": "cpu"}
        local = run(config(toy_world, hard, tmp_path / "local", **common))
        remote = run(config(toy_world, hard, tmp_path / "ray", executor="ray", num_workers=2, **common))
    finally:
        torch.set_num_threads(threads)
        ray.shutdown()
    assert local["promotions"] == remote["promotions"] and len(local["promotions"]) == 2

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "time"} for r in rows]
    assert strip(read_jsonl(tmp_path / "local" / "metrics.jsonl")) == strip(read_jsonl(tmp_path / "ray" / "metrics.jsonl"))
    assert (tmp_path / "local" / "promoted_questions.jsonl").read_text() == \
        (tmp_path / "ray" / "promoted_questions.jsonl").read_text()
    a = (tmp_path / "local" / "ckpt_0002" / "baseline_student" / "model.safetensors").read_bytes()
    b = (tmp_path / "ray" / "ckpt_0002" / "baseline_student" / "model.safetensors").read_bytes()
    assert a == b


def test_merged_adapter_dir_is_the_lora_model(tiny_toy, tmp_path):
    """A LoRA checkpoint written out as a full model (what vLLM serves for teacher sampling) computes
    what the adapter on its base computes, and loads as a plain model."""
    from soar.lora import add_adapter, is_adapter_dir, merge_adapter_dir

    toy_dir, _ = tiny_toy
    model = add_adapter(load_model(str(toy_dir)), LoraSettings(rank=4), seed=0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # B starts at zero: make the adapter change the outputs
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    model.save_pretrained(tmp_path / "adapter")
    assert is_adapter_dir(str(tmp_path / "adapter")) and not is_adapter_dir(str(toy_dir))
    merged = load_model(merge_adapter_dir(str(tmp_path / "adapter"), str(tmp_path / "merged")))
    ids = torch.tensor([[1, 4, 5, 6, 7, 14, 4]])
    with torch.no_grad():
        want, base = model(input_ids=ids).logits, load_model(str(toy_dir))(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    assert not hasattr(merged, "peft_config") and not is_adapter_dir(str(tmp_path / "merged"))
    assert (want - base).abs().max() > 0.1  # the adapter matters
    assert torch.allclose(got, want, atol=1e-4)
