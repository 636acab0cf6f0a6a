"""Does the grounded reward teach the teacher? Toy-world SOAR runs against a random-reward control.

    python benchmarks/teacher_signal.py [--seeds 2] [--steps 20] [--eval-seeds 10] [--out runs/teacher_signal]
                                        [--arms grounded random] [--teacher-kl 0.001] [--tau 0.3] [--min-retention F]
                                        [--teacher-carry-keep Q --teacher-carry-mix P0 P1 ...] [--pretrain-steps N]
                                        [--fresh-steps 80] [--fresh-schedule mixed|curriculum] [--cells ...] [--window N]

Runs are resumed where they stopped, so the two arms can run as two processes (one `--arms` each,
SOAR_THREADS=1, `--eval-seeds 0`), and a last call with both arms prints the comparison.

For each seed, two runs with the same settings and seed: SOAR with the dense grounded reward
(reward_metric "logprob": the change in log-probability of the Q_R reference answers) and the same
loop with teacher_reward "random" (dataset rewards are uniform noise, no promotion). The toy world
knows which teacher problems are useful stepping stones (correct, 1 or 2 carries), so the script
prints their share in the teacher's output over the run, for both, and per run the shares of correct
and of too-high teacher answers (carries where none belong), the baseline student's retention, the
teacher's KL at the end, and how the dataset rewards correlate with a dataset's count of stones,
too-high and too-low answers. `--teacher-carry-keep` / `--teacher-carry-mix` / `--pretrain-steps` run a variant toy
world (built and cached on first use). Then, for every grounded run that
promoted, `--eval-seeds` fresh students for each of SOAR-PQ, Base-T (as many untrained-teacher
questions as PQ holds), no-selection and PS replayed (a fresh student through the promoted datasets
in promotion order), and PS (the best promoted student, its pass@k sampled with each evaluation
seed); finished cells are read back. The fresh students of the PQ protocol (SOAR-PQ, Base-T,
Hard-Only, oracle) train `--fresh-steps` steps with the extra problems mixed into every batch, or
with `--fresh-schedule curriculum` on them alone for 64 steps and then on D_train alone (the paper's
MATH setting); each budget and schedule has cells of its own. `--teacher-lr 0` gives the
frozen-teacher control: the grounded selection of students with a teacher that never learns.
pass@32 on D_test (mean ± SD) and retention, and for the PQ-protocol arms their mean along the way
(the fresh students' evaluations every quarter of their budget). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

from soar.baselines import FreshStudentConfig, base_t, fresh_student
from soar.compare import seed_summary
from soar.demo import toy_hard_set
from soar.diagnostics import toy_truth_stats
from soar.loop import SoarConfig, run
from soar.models import set_threads
from soar.protocols import no_selection, promoted_questions, promoted_student, replayed_promotions
from soar.rl import RLConfig
from soar.runs import read_jsonl, write_json
from soar.student import SCHEDULES
from soar.tasks.toy import ToyConfig, build, problem_truth


def truth_by_step(run_dir: Path) -> list[list[dict]]:
    """The toy truth (`problem_truth`) of every teacher question, with its dataset and dataset reward,
    per outer step."""
    steps = sorted((run_dir / "questions").glob("step_*.jsonl"))
    return [[{**problem_truth(q["question"], q["answer"]), "dataset": q["dataset"], "reward": q["dataset_reward"]}
             for q in read_jsonl(path)] for path in steps]


def share(steps: list[list[dict]], key: str) -> list[float]:
    """Per outer step, the share of teacher questions whose truth has `key` (stepping_stone, correct, too_high)."""
    return [sum(t[key] for t in step) / len(step) for step in steps]


def reward_correlations(steps: list[list[dict]]) -> dict[str, float]:
    """Correlation, over all datasets of the run, of a dataset's reward minus its step's mean reward
    with how many of its questions are stepping stones / wrong and too high / wrong and too low /
    correct with one carry, out of the top column or a lower one: what the teacher's RL is actually
    rewarded for."""
    kinds = {"stones": lambda t: t["stepping_stone"], "too_high": lambda t: t["too_high"],
             "too_low": lambda t: not t["correct"] and not t["too_high"],
             "1-carry stones out of the top column": lambda t: t["correct"] and t["carries"] == 1 and t["top_carry"],
             "out of a lower column": lambda t: t["correct"] and t["carries"] == 1 and not t["top_carry"]}
    rewards, counts = [], {name: [] for name in kinds}
    for step in steps:
        datasets: dict[int, list[dict]] = {}
        for t in step:
            datasets.setdefault(t["dataset"], []).append(t)
        mean = statistics.mean(rows[0]["reward"] for rows in datasets.values())
        for rows in datasets.values():
            rewards.append(rows[0]["reward"] - mean)
            for name, is_kind in kinds.items():
                counts[name].append(sum(is_kind(t) for t in rows))
    return {name: statistics.correlation(rewards, c) if len(set(c)) > 1 and len(set(rewards)) > 1 else 0.0
            for name, c in counts.items()}


def thirds(xs: list[float]) -> list[float]:
    """Means of the first, middle and last third of a per-step series, in %."""
    n = max(1, len(xs) // 3)
    return [100 * statistics.mean(part) for part in (xs[:n], xs[n:len(xs) - n] or xs, xs[-n:])]


def evaluated_ps(run_cfg: SoarConfig, cell: FreshStudentConfig) -> dict:
    """PS with the cell's sampling seed, written to the cell's result.json like a fresh student's."""
    result = promoted_student(run_cfg, cell, log=lambda *_: None)
    Path(cell.out).mkdir(parents=True, exist_ok=True)
    write_json(Path(cell.out) / "result.json", result)
    return result


CELLS = ("soar_pq", "base_t", "no_selection", "soar_ps", "ps_replayed", "hard_only", "oracle")
PQ_PROTOCOL = ("soar_pq", "base_t", "hard_only", "oracle")  # fresh students whose budget is --fresh-steps


def cell_dir(root: Path, name: str, fresh_steps: int, seed: int, schedule: str = "mixed") -> Path:
    """Where an evaluation cell lives: PQ-protocol cells at a budget other than 80 steps get their own,
    and so do those with extra problems under the curriculum schedule (Hard-Only has none: the same)."""
    if name in PQ_PROTOCOL and fresh_steps != 80:
        name = f"{name}_{fresh_steps}steps"
    if name.startswith(("soar_pq", "base_t", "oracle")) and schedule != "mixed":
        name = f"{name}_{schedule}"
    return root / name / f"seed{seed}"


def along_the_way(results: list[dict], k: str = "32") -> str:
    """Fresh students' evaluations during training, averaged over seeds: at each evaluated step, the mean
    pass@k, how many students are off the plateau (pass@k of 5% or more) and the mean retention."""
    curves = [r["curve"] for r in results if r.get("curve")]
    if not curves:
        return ""
    points = []
    for step_points in zip(*curves):
        scores = [p["pass_at_k"][k] for p in step_points]
        retention = [p["retention"] for p in step_points if p.get("retention") is not None]
        points.append(f"{step_points[0]['step']}: {statistics.mean(scores):.1f} ({sum(x >= 5 for x in scores)} off"
                      + (f", retention {statistics.mean(retention):.2f})" if retention else ")"))
    return "    along the way, step: mean pass@" + k + " (students off the plateau, retention)  " + "; ".join(points)


def evaluated(cells: dict, make_cell, eval_seeds: int) -> dict[str, list[dict]]:
    """Each cell for each evaluation seed: a finished cell is read back (so an evaluation resumes)."""
    results: dict[str, list[dict]] = {name: [] for name in cells}
    for s in range(eval_seeds):
        for name, train_one in cells.items():
            cell = make_cell(name, s)
            done = Path(cell.out) / "result.json"
            results[name].append(json.loads(done.read_text()) if done.exists() else train_one(cell))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eval-seeds", type=int, default=10)
    ap.add_argument("--teacher-lr", type=float, default=3e-5)
    ap.add_argument("--tau", type=float, default=0.3, help="promotion threshold (nats of Q_R log-probability)")
    ap.add_argument("--teacher-kl", type=float, default=0.001, help="β of the teacher's KL penalty (paper: 0.001)")
    ap.add_argument("--min-retention", type=float, default=None,
                    help="refuse promotions that keep less than this fraction of the baseline's retention (extension)")
    ap.add_argument("--teacher-carry-keep", type=float, default=ToyConfig.teacher_carry_keep,
                    help="toy world variant: q_T of the teacher-format lines")
    ap.add_argument("--teacher-carry-mix", type=float, nargs="+", default=list(ToyConfig.teacher_carry_mix),
                    help="toy world variant: share of teacher-format problems by number of carries")
    ap.add_argument("--pretrain-steps", type=int, default=ToyConfig.pretrain_steps,
                    help="toy world variant: pretraining steps")
    ap.add_argument("--out", default="runs/teacher_signal")
    ap.add_argument("--arms", nargs="+", choices=["grounded", "random"], default=["grounded", "random"])
    ap.add_argument("--fresh-steps", type=int, default=80,
                    help="RLOO steps of the fresh students of the PQ protocol (SOAR-PQ, Base-T, Hard-Only, oracle)")
    ap.add_argument("--fresh-schedule", choices=SCHEDULES, default="mixed",
                    help="how the PQ-protocol students meet D_train: mixed in every batch, or a curriculum "
                         "(64 steps on the extra problems alone, then D_train: the paper's MATH setting)")
    ap.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS), help="which evaluations to run")
    ap.add_argument("--window", type=int, default=None,
                    help="print the by-thirds figures over the first N outer steps of each run (runs of other lengths)")
    args = ap.parse_args()
    set_threads(int(os.environ["SOAR_THREADS"]) if os.environ.get("SOAR_THREADS") else None)
    out = Path(args.out)
    quiet = lambda *_: None  # noqa: E731
    toy_dir = build(ToyConfig(teacher_carry_keep=args.teacher_carry_keep, teacher_carry_mix=tuple(args.teacher_carry_mix),
                              pretrain_steps=args.pretrain_steps))
    train, test = toy_hard_set(toy_dir, out / "hard_set", 256, 0)
    easy = str(toy_dir / "easy.jsonl")
    base_cfg = SoarConfig(model=str(toy_dir), hard_set=str(out / "hard_set"), out="", outer_steps=args.steps,
                          reward_metric="logprob", promotion_threshold=args.tau, retention=easy,
                          promotion_min_retention=args.min_retention,
                          teacher_rl=RLConfig(lr=args.teacher_lr, warmup_steps=2, kl_coef=args.teacher_kl))
    print(f"hard set {len(train)} train / {len(test)} test; {args.steps} outer steps, teacher lr {args.teacher_lr}, "
          f"teacher β {args.teacher_kl}, τ {args.tau}, promotion min retention {args.min_retention}")
    shares: dict[str, list[list[float]]] = {arm: [] for arm in args.arms}
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for arm in args.arms:
            change = {"teacher_reward": "random"} if arm == "random" else {}
            cfg = dataclasses.replace(base_cfg, out=str(out / arm / f"seed{seed}"), seed=seed, **change)
            t0 = time.time()
            state = run(cfg, resume=(Path(cfg.out) / "state.json").exists())
            steps = truth_by_step(Path(cfg.out))[:args.window]
            shares[arm].append(share(steps, "stepping_stone"))
            metrics = read_jsonl(Path(cfg.out) / "metrics.jsonl")[:args.window]
            retention = [m["student/retention"] for m in metrics]
            by_thirds = lambda xs, fmt: " -> ".join(format(x, fmt) + "%" for x in thirds(xs))  # noqa: E731
            refused = sum(m.get("promotion/candidate_retention") is not None and not m["promotion"] for m in metrics)
            print(f"seed {seed} {arm:8s}: {sum(m['promotion'] for m in metrics)} promotions ({refused} refused), {time.time() - t0:.0f}s; "
                  f"by thirds of the run: stepping stones {by_thirds(shares[arm][-1], '.1f')}, teacher answers "
                  f"correct {by_thirds(share(steps, 'correct'), '.0f')}, too high {by_thirds(share(steps, 'too_high'), '.0f')}; "
                  f"baseline retention {retention[-1]:.2f} at the end, {min(retention):.2f} at the lowest; "
                  f"teacher KL {metrics[-1]['teacher/kl']:.3f} at the end")
            print("    reward (minus the step's mean) correlates with a dataset's count of " +
                  ", ".join(f"{name} {c:+.2f}" for name, c in reward_correlations(steps).items()))
            if arm == "grounded":
                runs.append((cfg, state))

    print("\nshare of useful stepping stones in the teacher's output (%), mean over seeds")
    print(f"{'arm':10s} {'first third':>12s} {'middle':>7s} {'last third':>11s}   per step")
    for arm, per_seed in shares.items():
        first, middle, last = (statistics.mean(t) for t in zip(*(thirds(s) for s in per_seed)))
        steps = [statistics.mean(s[t] for s in per_seed) * 100 for t in range(len(per_seed[0]))]
        print(f"{arm:10s} {first:12.1f} {middle:7.1f} {last:11.1f}   " + " ".join(f"{x:.0f}" for x in steps))

    if args.eval_seeds < 1:
        return
    print(f"\nfresh students over {args.eval_seeds} seeds (pass@32 on D_test, %; "
          f"PQ-protocol students {args.fresh_steps} steps, {args.fresh_schedule} schedule)")
    fresh = FreshStudentConfig(model=str(toy_dir), hard_set=str(out / "hard_set"), out="", retention=easy,
                               steps=args.fresh_steps, eval_every=max(1, args.fresh_steps // 4),
                               schedule=args.fresh_schedule)
    def where(root: Path, name: str, s: int) -> Path:
        return cell_dir(root, name, args.fresh_steps, s, args.fresh_schedule)

    def cells_under(root: Path):
        """`evaluated`'s make_cell: the cells of this budget and schedule under `root`."""
        return lambda name, s: dataclasses.replace(fresh, out=str(where(root, name, s)), seed=s)

    oracle = str(toy_dir / "oracle_curriculum.jsonl")
    world = {"hard_only": lambda c: fresh_student(c, log=quiet),
             "oracle": lambda c: fresh_student(dataclasses.replace(c, extra=oracle), log=quiet)}
    world = {name: f for name, f in world.items() if name in args.cells}
    if world:  # the world's own arms: the same for every run of this --out
        for name, results in evaluated(world, cells_under(out / "world"), args.eval_seeds).items():
            print(f"  {name:13s} {seed_summary(results)}")
            print(along_the_way(results))
    for cfg, state in runs:
        if not state["promotions"]:
            print(f"{cfg.out}: no promotion, no PQ or PS")
            continue
        pq_size = len(read_jsonl(Path(cfg.out) / "promoted_questions.jsonl"))
        train_arm = {"soar_pq": lambda c: promoted_questions(cfg, c, log=quiet),
                     "base_t": lambda c: base_t(c, pq_size, log=quiet),
                     "no_selection": lambda c: no_selection(cfg, c, log=quiet),
                     "soar_ps": lambda c: evaluated_ps(cfg, c),
                     "ps_replayed": lambda c: replayed_promotions(cfg, c, log=quiet)}
        train_arm = {name: f for name, f in train_arm.items() if name in args.cells}
        arms = evaluated(train_arm, cells_under(Path(cfg.out) / "eval"), args.eval_seeds)
        print(f"{cfg.out}: {len(state['promotions'])} promotions, PQ {pq_size} questions")
        question_sets = {"PQ": [toy_truth_stats(read_jsonl(Path(cfg.out) / "promoted_questions.jsonl"))]}
        if "base_t" in arms:
            question_sets["Base-T (mean over seeds)"] = [toy_truth_stats(read_jsonl(
                where(Path(cfg.out) / "eval", "base_t", s) / "teacher_questions.jsonl")) for s in range(args.eval_seeds)]
        for name, truths in question_sets.items():
            mean = lambda key: 100 * statistics.mean(t[key] for t in truths)  # noqa: E731
            print(f"  {name} questions: stepping stones {mean('stepping_stone'):.0f}%, correct {mean('correct'):.0f}%")
        for name, results in arms.items():
            print(f"  {name:13s} {seed_summary(results)}")
            if name in PQ_PROTOCOL:
                print(along_the_way(results))
        if "soar_ps" in arms:
            print(f"  (soar_ps: student {arms['soar_ps'][0]['student']} of {arms['soar_ps'][0]['candidates']} "
                  f"promoted, its pass@32 sampled with each evaluation seed)")


if __name__ == "__main__":
    main()
