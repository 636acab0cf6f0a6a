"""`soar demo`: the whole method end to end on the toy world, on a CPU, with a report.

Phases: build (or reuse) the toy model · fail@128 hard set · Hard-Only · SOAR · PS · PQ · Base-T ·
no-selection · oracle curriculum · report (summary.json, report.md, PNG plots) in the run directory.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from soar.baselines import FreshStudentConfig, base_t, fresh_student
from soar.evaluation import PASS_KS, evaluate_pass_at_k, greedy_accuracy
from soar.generation import HFGenerator
from soar.hardset import find_hard, split_train_test
from soar.loop import SoarConfig, run
from soar.models import load_model, load_tokenizer
from soar.progress import log
from soar.protocols import no_selection, promoted_questions, promoted_student
from soar.report import write_report
from soar.runs import read_jsonl, read_problems, write_json, write_jsonl
from soar.tasks import load_task
from soar.tasks.toy import ToyConfig, build, weights_sha256


@dataclass
class DemoConfig:
    """The toy-world demo: every phase at a budget that fits ~10 minutes on 2 CPU cores."""

    out: str = "runs/demo"
    """Run directory (summary.json, report.md, plots, and one folder per phase)."""
    seed: int = 0
    """Seed of the SOAR run and of the hard-set split."""
    eval_seeds: int = 1
    """Fresh-student seeds per arm; summary.json reports the mean over them."""
    candidates: int = 256
    """Hard candidates filtered with fail@128 (the toy world writes 512)."""
    student_steps: int = 80
    """RLOO steps of every fresh student (Hard-Only, PQ, Base-T, oracle)."""
    soar: SoarConfig = field(default_factory=lambda: SoarConfig(model="", hard_set="", out="", outer_steps=12,
                                                                 reward_metric="sampled"))
    """The SOAR run (model, hard_set and out are filled in by the demo)."""
    toy: ToyConfig = field(default_factory=ToyConfig)


def toy_hard_set(toy_dir: Path, hard: Path, candidates: int, seed: int) -> tuple[list[dict], list[dict]]:
    """D_train and D_test: the fail@128 problems among the toy world's first `candidates` hard
    candidates, split 50/50 with `seed`; written to `hard` once and read back afterwards."""
    if not (hard / "test.jsonl").exists():
        problems = read_problems(toy_dir / "hard_candidates.jsonl")[:candidates]
        generator = HFGenerator(load_model(str(toy_dir)), load_tokenizer(str(toy_dir)))
        hard_problems, _ = find_hard(generator, load_task("toy"), problems, 128, seed)
        train, test = split_train_test(hard_problems, seed)
        write_jsonl(hard / "train.jsonl", train)
        write_jsonl(hard / "test.jsonl", test)
    return read_problems(hard / "train.jsonl"), read_problems(hard / "test.jsonl")


def run_demo(cfg: DemoConfig) -> dict:
    t_start = time.time()
    out = Path(cfg.out)
    phases = 9

    def phase(i: int, name: str) -> None:
        log(f"[{i}/{phases}] {name}  ({time.time() - t_start:.0f}s elapsed)")

    phase(1, "toy world")
    toy_dir = build(cfg.toy)
    task = load_task("toy")
    phase(2, "fail@128 hard set")
    hard = out / "hard_set"
    train, test = toy_hard_set(toy_dir, hard, cfg.candidates, cfg.seed)
    log(f"  hard set: {len(train)} train / {len(test)} test")

    easy = str(toy_dir / "easy.jsonl")
    fresh = FreshStudentConfig(model=str(toy_dir), hard_set=str(hard), out="", steps=cfg.student_steps,
                               eval_every=cfg.student_steps, retention=easy)
    quiet = lambda *_: None  # noqa: E731
    results: dict[str, list[dict]] = {arm: [] for arm in ("hard_only", "base_t", "no_selection", "soar_pq", "soar_ps", "oracle")}

    base_gen = HFGenerator(load_model(str(toy_dir)), load_tokenizer(str(toy_dir)))
    base = evaluate_pass_at_k(base_gen, task, test, 32, seed=cfg.seed)
    base["retention"] = greedy_accuracy(base_gen, task, read_problems(easy))

    phase(3, "Hard-Only")
    for s in range(cfg.eval_seeds):
        results["hard_only"].append(fresh_student(dataclasses.replace(fresh, out=str(out / "hard_only" / f"seed{s}"), seed=s), log=quiet))

    phase(4, "SOAR")
    soar_cfg = dataclasses.replace(cfg.soar, model=str(toy_dir), hard_set=str(hard), out=str(out / "soar"),
                                   seed=cfg.seed, retention=easy)
    state = run(soar_cfg, resume=(out / "soar" / "state.json").exists())
    pq_rows = read_jsonl(out / "soar" / "promoted_questions.jsonl") if state["promotions"] else []

    phase(5, "SOAR-PS")
    results["soar_ps"].append(promoted_student(soar_cfg, dataclasses.replace(fresh, out=str(out / "soar_ps")), log=quiet))
    phase(6, "SOAR-PQ and no-selection")
    for s in range(cfg.eval_seeds):
        results["soar_pq"].append(promoted_questions(soar_cfg, dataclasses.replace(fresh, out=str(out / "soar_pq" / f"seed{s}"), seed=s), log=quiet))
        results["no_selection"].append(no_selection(soar_cfg, dataclasses.replace(fresh, out=str(out / "no_selection" / f"seed{s}"), seed=s), log=quiet))
    phase(7, "Base-T")
    for s in range(cfg.eval_seeds):
        results["base_t"].append(base_t(dataclasses.replace(fresh, out=str(out / "base_t" / f"seed{s}"), seed=s),
                                        max(len(pq_rows), cfg.soar.dataset_size), log=quiet))
    phase(8, "oracle curriculum")
    for s in range(cfg.eval_seeds):
        results["oracle"].append(fresh_student(dataclasses.replace(fresh, out=str(out / "oracle" / f"seed{s}"), seed=s,
                                                                   extra=str(toy_dir / "oracle_curriculum.jsonl")), log=quiet))

    phase(9, "report")
    pass_at_k = {"base": base["pass_at_k"]}
    retention = {"base": base["retention"]}
    for arm, runs in results.items():
        runs = [r for r in runs if r is not None]
        pass_at_k[arm] = {str(k): statistics.mean(r["pass_at_k"][str(k)] for r in runs) for k in PASS_KS} if runs else None
        retention[arm] = statistics.mean(r["retention"] for r in runs) if runs else None
    summary = {"pass_at_k": pass_at_k, "retention": retention, "promotions": len(state["promotions"]),
               "outer_steps": state["step"], "reward_metric": soar_cfg.reward_metric,
               "hard_set": {"train": len(train), "test": len(test)},
               "wall_seconds": round(time.time() - t_start, 1), "seed": cfg.seed, "eval_seeds": cfg.eval_seeds,
               "toy_world": str(toy_dir), "toy_weights_sha256": weights_sha256(toy_dir)}
    write_json(out / "summary.json", summary)
    report = write_report(out, summary, out / "soar", toy=True)
    log(f"done in {summary['wall_seconds']:.0f}s: {out / 'summary.json'}, {report}")
    def fmt(x, spec):
        return "–" if x is None else format(x, spec)
    for arm, values in pass_at_k.items():
        log(f"  {arm:13s} pass@1 {fmt(values and values['1'], '5.1f')}  pass@32 {fmt(values and values['32'], '5.1f')}"
            f"  retention {fmt(retention[arm], '.2f')}")
    return summary
