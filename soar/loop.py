"""The SOAR bilevel loop: Algorithm 1 of the paper (SOAR_SPEC §5), one outer step per iteration.

    1. teacher generation   g·n valid (question, answer) pairs from π_T, split in order into X_1..X_g
    2. reward questions     Q_R: M problems drawn afresh from D_train
    3. inner loop           for each X_k and repeat j: copy the baseline student θ, train K RLOO steps
                            on X_k (reward = agreement with the teacher's answer), R_kj = Acc(θ'_kj) − Acc(θ)
    4. dataset reward       R_k = mean_j R_kj
    5. promotion check      R̄ = moving average of R̂ = mean_k R_k over m steps; if R̄ > τ the median
                            student of X_{k*} (k* = argmax R_k) becomes θ and X_{k*} joins PQ
    6. teacher update       one RLOO step on π_T, advantage of a sample = R_k − mean of the other R_k'

Readings of the paper and deviations (each also in the run's config.json):
- Acc is greedy accuracy on Q_R by default, as in the paper. `reward_metric="sampled"` measures mean
  success over `reward_samples` samples at temperature 1 instead (deviation: the toy studies found
  greedy too coarse at toy scale). `reward_metric="logprob"` uses the change in log-probability
  of the Q_R reference answers (extension: a dense grounded reward, not in the paper). The same seed is used for the baseline and every student of a
  step, so differences are not sampling noise between them.
- Rejected teacher samples are resampled up to `max_teacher_rounds` rounds, then the step fails with
  a clear error (the paper resamples without a stated cap).
- With an even r the "median" student is the lower of the two middle ones; after a promotion the
  moving-average history is reset (rewards are then measured against a stronger baseline).
- Inner-loop students and the teacher are KL-regularised towards the initial base model.
- K becomes K + `extra_inner_steps_after_promotion` once a promotion has happened (paper: 10 → 15).
- Every inner loop's randomness is seeded from (run seed, outer step, k, j), so results do not depend
  on the order or the process in which inner loops run (executor "local" or "ray"), and a resumed run
  repeats an uninterrupted one exactly.
- `student_lora` / `teacher_lora` with rank > 0 train LoRA adapters instead of every weight (extension:
  the paper fine-tunes fully); a promoted student's adapter is merged into θ.
- `promotion_min_retention` (extension, off by default) refuses a promotion whose student lost the
  easy `retention` problems: the toy studies saw the dense reward promote a student that had lost a
  third of them.
- `teacher_reward="intrinsic"` is the Intrinsic-T baseline and `promote=False` Grounded-T without
  promotion (SOAR_SPEC §8), not SOAR itself.
"""

from __future__ import annotations

import dataclasses
import random
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch

from soar.baselines import teacher_questions
from soar.diagnostics import question_stats
from soar.evaluation import count_correct, greedy_accuracy, reward_accuracy
from soar.executors import InnerLoop, make_executor
from soar.generation import GenerationConfig, make_generator
from soar.lora import LoraSettings, add_adapter, load_weights
from soar.models import frozen_copy, load_model, load_tokenizer, resolve_device
from soar.progress import log
from soar.promotion import dataset_advantages, learnability, promotion_check
from soar.rl import RLConfig, make_optimizer, rloo_step
from soar.runs import append_jsonl, load_checkpoint, read_problems, save_checkpoint, truncate_logs, write_json, write_jsonl
from soar.student import StudentConfig
from soar.tasks import configured_task

DEVIATIONS = [" ".join(line.strip("- ").split()) for line in __doc__.split("config.json):")[1].strip().split("\n- ")]


@dataclass
class SoarConfig:
    """A SOAR run (Algorithm 1). Defaults: the toy world on CPU, scaled down from SOAR_SPEC §6."""

    model: str
    """Base model π_base (directory or hub id): teacher and student both start from it."""
    hard_set: str
    """Directory with train.jsonl (D_train, used only through the teacher reward)."""
    out: str
    """Run directory."""
    task: str = "toy"
    """Task: "toy" or "math"."""
    chat_template: bool = False
    """Wrap the teacher and student prompts in the model's chat template (instruct models; math task)."""
    seed: int = 0
    """Run seed: every random choice derives from it."""
    outer_steps: int = 20
    """T: outer steps (paper: 200)."""
    group_size: int = 4
    """g: datasets per outer step = the teacher's RLOO group."""
    dataset_size: int = 16
    """n: (question, answer) pairs per dataset (paper: 64)."""
    num_repeats: int = 2
    """r: students trained per dataset (paper: 4)."""
    num_reward_questions: int = 64
    """M: size of Q_R, drawn afresh from D_train every outer step."""
    inner_steps: int = 10
    """K: student RLOO steps per inner loop."""
    extra_inner_steps_after_promotion: int = 5
    """K grows by this once a student has been promoted (paper: 10 -> 15)."""
    promotion_threshold: float = 0.01
    """τ: promote when the moving average of the mean reward exceeds it."""
    window: int = 3
    """m: moving-average window of the mean reward R̂."""
    reward_metric: str = "greedy"
    """Acc on Q_R: "greedy" (paper), "sampled" (mean success over reward_samples at temperature 1), or
    "logprob" (log-probability of the Q_R reference answers: the dense grounded reward, an extension)."""
    reward_samples: int = 8
    """Samples per Q_R question when reward_metric is "sampled"."""
    retention: str | None = None
    """Easy problems (JSONL) whose greedy accuracy by the baseline student is logged every step."""
    teacher_max_new_tokens: int = 24
    """Longest teacher sample (paper: 512)."""
    max_teacher_rounds: int = 10
    """Resampling rounds for rejected teacher samples before the step fails."""
    teacher_rl: RLConfig = field(default_factory=lambda: RLConfig(lr=1e-5, warmup_steps=2))
    """The teacher's RLOO (paper: lr 1e-5, 20 warmup steps)."""
    student: StudentConfig = field(default_factory=StudentConfig)
    """The inner-loop student's RLOO."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    teacher_reward: str = "grounded"
    """"grounded": the student's improvement on Q_R (SOAR). "intrinsic": the Intrinsic-T baseline's
    learnability reward (per question 0 if s = 0 else 1 − s, s = success over intrinsic_samples student
    samples; no student training, so no promotion). "random": a control whose dataset rewards are
    uniform random numbers (no information, no promotion): what the teacher's RL does on noise alone."""
    intrinsic_samples: int = 32
    """Student samples per question for the learnability reward (paper: 32)."""
    promote: bool = True
    """Apply promotions. False runs the "Grounded-T without promotion" baseline (the check is still logged)."""
    promotion_min_retention: float | None = None
    """Extension, off (None) by default: refuse a promotion whose student keeps less than this fraction
    of the baseline's greedy accuracy on the `retention` problems (0.95: loses at most 5% of them; above
    1 it must gain). Needs `retention`. Refused promotions are logged, and θ stays."""
    student_lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA for the inner-loop students (rank 0: full fine-tuning, the paper's setting)."""
    teacher_lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA for the teacher (rank 0: full fine-tuning)."""
    executor: str = "local"
    """Where the g·r inner loops run: "local" (this process) or "ray" (Ray actors)."""
    num_workers: int = 2
    """Ray: student worker actors."""
    ray_address: str | None = None
    """Ray: address of an existing cluster ("auto" inside one); None starts a local one."""
    worker_cpus: float = 1.0
    """Ray: CPUs per student worker (also its torch threads)."""
    worker_gpus: float = 0.0
    """Ray: GPUs per student worker (1 on a GPU cluster)."""
    device: str = "auto"
    """"auto" (CUDA when available), "cpu" or "cuda"."""
    dtype: str = "float32"
    """Weights' dtype: "float32", "bfloat16" or "float16"."""


def inner_seed(seed: int, step: int, k: int, j: int) -> int:
    """The seed of inner loop (k, j) at outer step t: independent of execution order."""
    return random.Random(f"{seed}/{step}/{k}/{j}").randrange(2**31)


def draw_reward_questions(d_train: list[dict], cfg: SoarConfig, step: int) -> tuple[list[dict], int]:
    """Q_R of outer step t (M problems from D_train) and the sampling seed shared by its Acc measurements."""
    rng = random.Random(f"{cfg.seed}/{step}/reward_questions")
    return rng.sample(d_train, min(cfg.num_reward_questions, len(d_train))), rng.randrange(2**31)


def config_from_dict(d: dict, cls=SoarConfig):
    """The SoarConfig written in a run's config.json (nested configs rebuilt; unknown keys ignored)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in d:
            sub = hints[f.name]
            kwargs[f.name] = config_from_dict(d[f.name], sub) if dataclasses.is_dataclass(sub) else d[f.name]
    return cls(**kwargs)


def load_preset(path: str | Path) -> SoarConfig:
    """A SoarConfig from an override-only TOML preset (unset fields keep their defaults; model,
    hard_set and out may be left for the command line)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    with open(path, "rb") as f:
        overrides = tomllib.load(f)
    merged = dataclasses.asdict(SoarConfig(model="", hard_set="", out=""))
    known = set(merged)

    def merge(into: dict, new: dict, where: str) -> None:
        for key, value in new.items():
            if key not in into:
                raise ValueError(f"{path}: unknown setting {where}{key!r}")
            if isinstance(value, dict):
                merge(into[key], value, f"{where}{key}.")
            else:
                into[key] = value

    merge(merged, overrides, "")
    assert known == set(merged)
    return config_from_dict(merged)


def check(cfg: SoarConfig) -> None:
    """Fail early, with the setting's name, on values the loop cannot run with."""
    choices = {"reward_metric": ("greedy", "sampled", "logprob"), "teacher_reward": ("grounded", "intrinsic", "random"),
               "executor": ("local", "ray"), "dtype": ("float32", "bfloat16", "float16")}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, not {getattr(cfg, name)!r}")
    if cfg.group_size < 2:
        raise ValueError("group_size (g) must be at least 2: the teacher's RLOO compares datasets")
    if cfg.promotion_min_retention is not None and (not cfg.retention or cfg.promotion_min_retention < 0):
        raise ValueError("promotion_min_retention needs a retention problem file and a value >= 0")


def run(cfg: SoarConfig, resume: bool = False) -> dict:
    """Run (or resume) SOAR; returns the final state. Everything is written under cfg.out."""
    check(cfg)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    tokenizer = load_tokenizer(cfg.model)
    task = configured_task(cfg, tokenizer)
    d_train = read_problems(Path(cfg.hard_set) / "train.jsonl")
    easy = read_problems(cfg.retention) if cfg.retention else []
    pad = tokenizer.pad_token_id
    base = load_model(cfg.model, device, cfg.dtype)
    reference = frozen_copy(base)  # π_base, the KL anchor of teacher and students
    baseline_student = frozen_copy(base)  # θ
    teacher = base.train().requires_grad_(True)
    if cfg.teacher_lora.rank:
        teacher = add_adapter(teacher, cfg.teacher_lora, seed=cfg.seed)
    teacher_gen = make_generator(teacher, tokenizer, cfg.generation, cfg.model)
    baseline_gen = make_generator(baseline_student, tokenizer, cfg.generation, cfg.model)
    teacher_opt, teacher_sched = make_optimizer(teacher, cfg.teacher_rl, cfg.outer_steps)
    state = {"step": 0, "history": [], "promotions": []}
    if resume:
        state = load_checkpoint(out, teacher, teacher_opt, teacher_sched, baseline_student)
        log(f"resuming {out} at outer step {state['step']}")
    else:
        if (out / "state.json").exists():
            raise FileExistsError(f"{out} already holds a run: resume it with --resume, or pick another --out")
        write_json(out / "config.json", {**dataclasses.asdict(cfg), "readings_and_deviations": DEVIATIONS})
    truncate_logs(out, state["step"])
    # The inner loops' workers: students start from θ (local: they share the driver's KL reference).
    executor = make_executor(dataclasses.replace(cfg, device=device), reference) if cfg.teacher_reward == "grounded" else None
    if executor is not None and state["promotions"]:
        executor.set_baseline(baseline_student.state_dict())

    started, first = time.time(), state["step"]
    for t in range(state["step"], cfg.outer_steps):
        timings: dict[str, float] = {}
        clock = time.time()
        # 1. Teacher generation: g·n valid pairs, split in order into X_1..X_g.
        pairs, samples, rejected = teacher_questions_with_samples(teacher_gen, task, cfg, t)
        n = cfg.dataset_size
        datasets = [pairs[k * n:(k + 1) * n] for k in range(cfg.group_size)]
        timings["teacher_generation"], clock = time.time() - clock, time.time()

        # 2. Reward questions Q_R, drawn afresh from D_train.
        reward_questions, acc_seed = draw_reward_questions(d_train, cfg, t)
        baseline_acc = reward_accuracy(baseline_gen, task, reward_questions, cfg.reward_metric, cfg.reward_samples, acc_seed)
        retention = greedy_accuracy(baseline_gen, task, easy) if easy else None
        timings["baseline_accuracy"], clock = time.time() - clock, time.time()

        # 3. Inner loop: r copies of θ per dataset, K RLOO steps each, rewarded on Q_R.
        inner_steps = cfg.inner_steps + (cfg.extra_inner_steps_after_promotion if state["promotions"] else 0)
        if cfg.teacher_reward == "grounded":
            loops = [InnerLoop(k, j, inner_seed(cfg.seed, t, k, j), dataset, inner_steps, reward_questions, acc_seed)
                     for k, dataset in enumerate(datasets) for j in range(cfg.num_repeats)]
            accs = iter(executor.run(loops))
            rewards = [[next(accs) - baseline_acc for _ in range(cfg.num_repeats)] for _ in datasets]
        elif cfg.teacher_reward == "intrinsic":  # Intrinsic-T (SOAR_SPEC §8): learnability for θ, no training
            rewards = [[learnability(count_correct(baseline_gen, task, dataset, cfg.intrinsic_samples,
                                                   seed=inner_seed(cfg.seed, t, k, 0)), cfg.intrinsic_samples)]
                       for k, dataset in enumerate(datasets)]
        else:  # control: rewards that carry no information, so the teacher drifts under RL noise alone
            rng = random.Random(f"{cfg.seed}/{t}/random_reward")
            rewards = [[rng.random()] for _ in datasets]
        timings["inner_loop"], clock = time.time() - clock, time.time()

        # 4. Dataset rewards R_k, and 5. the promotion check.
        dataset_rewards = [sum(r) / len(r) for r in rewards]
        decision, history = promotion_check(rewards, state["history"], cfg.window, cfg.promotion_threshold)
        promote = decision.promote and cfg.promote and cfg.teacher_reward == "grounded"
        candidate_retention = None
        if promote:
            weights = executor.trained_weights(decision.dataset, decision.student)
            if cfg.promotion_min_retention is not None:  # extension: the promoted student keeps the easy ones
                kept = {name: w.clone() for name, w in baseline_student.state_dict().items()}
                load_weights(baseline_student, weights)
                candidate_retention = greedy_accuracy(baseline_gen, task, easy)
                promote = candidate_retention >= cfg.promotion_min_retention * retention
                if not promote:
                    baseline_student.load_state_dict(kept)
                    log(f"promotion refused: retention {candidate_retention:.2f} against the baseline's {retention:.2f}")
        if decision.promote and not promote:  # promotion off or refused: θ stays, so its rewards keep counting
            history = (state["history"] + [sum(dataset_rewards) / len(dataset_rewards)])[-cfg.window:]
        state["history"] = history
        if promote:
            if candidate_retention is None:  # else the retention check has loaded them already
                load_weights(baseline_student, weights)
            executor.set_baseline(weights)
            state["promotions"].append({"step": t, "dataset": decision.dataset, "student": decision.student,
                                        "reward": rewards[decision.dataset][decision.student]})
            for row in datasets[decision.dataset]:
                append_jsonl(out / "promoted_questions.jsonl", {**row, "step": t, "dataset": decision.dataset})
            baseline_student.save_pretrained(out / "promoted" / f"step_{t:04d}")  # PS candidates
        timings["promotion"], clock = time.time() - clock, time.time()

        # 6. Teacher update: one RLOO step, dataset-level leave-one-out advantages.
        advantages = dataset_advantages(dataset_rewards)
        groups = [samples[k * n:(k + 1) * n] for k in range(cfg.group_size)]
        adv = torch.tensor([[a] * n for a in advantages])  # (g, n)
        teacher_stats = rloo_step(teacher, reference, teacher_opt, teacher_sched, groups,
                                  torch.tensor([[r] * n for r in dataset_rewards]), cfg.teacher_rl, pad, advantages=adv)
        timings["teacher_update"] = time.time() - clock

        write_jsonl(out / "questions" / f"step_{t:04d}.jsonl",
                    [{**row, "dataset": k, "dataset_reward": dataset_rewards[k]} for k, ds in enumerate(datasets) for row in ds])
        metrics = {"step": t, "teacher/dataset_rewards": dataset_rewards, "teacher/student_rewards": rewards,
                   "teacher/mean_reward": sum(dataset_rewards) / len(dataset_rewards),
                   "teacher/moving_average": decision.moving_average, "promotion": promote,
                   "promotion/candidate_retention": candidate_retention,
                   "teacher/rejections": rejected, "teacher/kl": teacher_stats["kl"],
                   "student/baseline_accuracy": baseline_acc, "student/retention": retention,
                   "student/inner_steps": inner_steps,
                   "questions": question_stats([p["question"] for p in pairs]),
                   **({"questions/truth": task.truth(pairs)} if task.truth else {}),
                   "time": {k: round(v, 3) for k, v in timings.items()}}
        append_jsonl(out / "metrics.jsonl", metrics)
        state["step"] = t + 1
        save_checkpoint(out, state, teacher, teacher_opt, teacher_sched, baseline_student)
        log(f"outer step {t + 1}/{cfg.outer_steps}  R̂ {metrics['teacher/mean_reward']:+.4f}  "
            f"R̄ {decision.moving_average:+.4f}  baseline Acc {baseline_acc:.3f}"
            + ("  PROMOTED" if promote else "") + f"  {sum(timings.values()):.1f}s"
            f"  ETA {(time.time() - started) / (t + 1 - first) * (cfg.outer_steps - t - 1):.0f}s")
    if executor is not None:
        executor.close()
    return state


def teacher_questions_with_samples(generator, task, cfg: SoarConfig, step: int):
    """g·n valid pairs with the teacher samples that produced them (for the RLOO update)."""
    count = cfg.group_size * cfg.dataset_size
    seed = random.Random(f"{cfg.seed}/{step}/teacher").randrange(2**31)
    return teacher_questions(generator, task, count, seed, cfg.teacher_max_new_tokens, cfg.max_teacher_rounds)
