"""`soar compare`: the paper's comparison (SOAR_SPEC §8-9, Table 4), pass@k of each method over seeds.

Every (method, seed) cell is one directory out/<method>/seed<S>/ whose result.json marks it done: a
rerun skips finished cells, so an interrupted compare resumes, and `--collect-only` only tabulates.

    hard-only                 a fresh student on D_train alone
    hard-only-4x              the same with a group size ×4 (4× the samples per step)
    base-t                    teacher sampling from the untrained teacher (the base model)
    intrinsic-t               teacher sampling from the final teacher of a learnability-rewarded run
    grounded-t-no-promotion   teacher sampling from the final teacher of a run without promotion
    soar-pq, soar-ps          PQ and PS of a SOAR run (one run per seed, shared by both)
    no-selection              the control of protocols.no_selection, on that same SOAR run
    oracle                    a fresh student on D_train with the oracle problems

Seed S seeds the SOAR runs and every fresh student of that seed's cells; the hard set is shared by
all seeds. A run with no promotion has no PQ, PS or no-selection result: its cell holds null and the
table says "n/a (no promotion)". Fresh students are scored by the slope rule (`score`, SOAR_SPEC §7)
or by their final evaluation; PS is one evaluation of a promoted student, the same under both.

Layout of `out`:
    hard_set/               (toy world) the fail@128 hard set, built once
    runs/<run>/seed<S>/     SOAR runs: soar, intrinsic, no-promotion
    <method>/seed<S>/       one cell: result.json, and the fresh student's curve.jsonl
    compare.md, compare.csv, compare_pass_at_k.png
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from soar.baselines import FreshStudentConfig, fresh_student
from soar.evaluation import PASS_KS
from soar.loop import SoarConfig, run
from soar.progress import log
from soar.diagnostics import question_stats
from soar.protocols import no_selection, promoted_questions, promoted_student, teacher_sampling
from soar.report import plot_pass_at_k
from soar.runs import read_jsonl, write_json
from soar.student import check_schedule
from soar.tasks import load_task
from soar.tasks.toy import ToyConfig

LABELS = {"hard-only": "Hard-Only", "hard-only-4x": "Hard-Only, group ×4", "base-t": "Base-T",
          "intrinsic-t": "Intrinsic-T", "grounded-t-no-promotion": "Grounded-T w/o promotion",
          "no-selection": "no selection", "soar-ps": "SOAR-PS", "soar-pq": "SOAR-PQ", "oracle": "oracle"}
RUN_OF = {"soar-pq": "soar", "soar-ps": "soar", "no-selection": "soar", "intrinsic-t": "intrinsic",
          "grounded-t-no-promotion": "no-promotion"}
"""The SOAR run a method reads (per seed)."""
RUN_SETTINGS = {"soar": {}, "intrinsic": {"teacher_reward": "intrinsic"}, "no-promotion": {"promote": False}}
"""What makes each run that baseline: overrides of CompareConfig.soar."""
NO_PROMOTION = "n/a (no promotion)"


@dataclass
class CompareConfig:
    """Methods × seeds at the same fresh-student budget; defaults: the toy world on CPU."""

    out: str = "runs/compare"
    """Directory of the cells, the SOAR runs and the tables."""
    methods: list[str] = field(default_factory=lambda: ["hard-only", "intrinsic-t", "soar-pq", "soar-ps"])
    """Rows of the table, in order: hard-only, hard-only-4x, base-t, intrinsic-t, grounded-t-no-promotion,
    soar-pq, soar-ps, no-selection, oracle."""
    seeds: int = 3
    """Seeds 0..seeds-1 of every method (paper: 3)."""
    model: str | None = None
    """Base model. Default: the toy world built from `toy` (cached). With task "toy" it is a toy world
    directory, whose hard_candidates.jsonl, easy.jsonl and oracle_curriculum.jsonl are used."""
    hard_set: str | None = None
    """Directory with train.jsonl and test.jsonl (`soar filter`). Default (toy task): the fail@128 problems
    among the toy world's first `candidates` hard candidates, split with seed 0, built in out/hard_set."""
    task: str = "toy"
    """Task of the problems: "toy" or "math"."""
    candidates: int = 256
    """Toy world: hard candidates filtered with fail@128 for the default hard set."""
    oracle: str | None = None
    """Problems (JSONL) of the oracle method (paper: the full MATH train set, or 128 random real
    questions). Default for the toy task: the toy world's oracle_curriculum.jsonl."""
    num_questions: int = 128
    """Teacher sampling (base-t, intrinsic-t, grounded-t-no-promotion): questions per fresh student."""
    score: str = "slope-rule"
    """Score of a fresh student: "slope-rule" (SOAR_SPEC §7: mean over the evaluations after the
    slope checkpoint) or "final" (its last evaluation). Both are in every result.json."""
    collect_only: bool = False
    """Run nothing: tabulate the cells already finished."""
    fresh: FreshStudentConfig = field(default_factory=lambda: FreshStudentConfig(model="", hard_set="", out=""))
    """Every fresh student (steps, schedule, evaluation...); model, hard_set, out, task, seed and extra are
    set per cell, retention defaults to the toy world's easy.jsonl."""
    soar: SoarConfig = field(default_factory=lambda: SoarConfig(model="", hard_set="", out="", outer_steps=12,
                                                                 reward_metric="sampled"))
    """The SOAR runs; model, hard_set, out, task, seed and retention are set per run."""
    toy: ToyConfig = field(default_factory=ToyConfig)
    """The toy world used when `model` is not given."""


def check(cfg: CompareConfig) -> None:
    """Fail early, with the setting's name, on what compare cannot run."""
    unknown = [m for m in cfg.methods if m not in LABELS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}: expected some of {', '.join(LABELS)}")
    if cfg.score not in ("slope-rule", "final"):
        raise ValueError(f"score must be 'slope-rule' or 'final', not {cfg.score!r}")
    if cfg.seeds < 1:
        raise ValueError("seeds must be at least 1")
    check_schedule(cfg.fresh.schedule)
    if cfg.task != "toy" and not cfg.collect_only:
        missing = [name for name in ("model", "hard_set") if getattr(cfg, name) is None]
        if "oracle" in cfg.methods and cfg.oracle is None:
            missing.append("oracle")
        if missing:
            raise ValueError(f"task {cfg.task!r} needs {', '.join('--' + m.replace('_', '-') for m in missing)}")


# ---------------------------------------------------------------- aggregation and tables (pure)

def cell_score(cell: dict, score: str) -> tuple[dict[str, float], float | None] | None:
    """(pass@k by k, retention) of one finished cell; None for a cell without result (no promotion).

    Fresh students carry both scores; a PS cell (one evaluation, no training curve) only "pass_at_k".
    """
    if cell.get("pass_at_k") is None:
        return None
    if score == "slope-rule" and "pass_at_k_slope_rule" in cell:
        return cell["pass_at_k_slope_rule"], cell["retention_slope_rule"]
    return cell["pass_at_k"], cell.get("retention")


def aggregate(cells: list[dict | None], score: str, ks: tuple[int, ...] = PASS_KS) -> dict:
    """Mean ± SD over seeds of one method's cells (None: a cell not run yet).

    Returns {"seeds": cells with numbers, "no_promotion": cells without result, "missing": cells not
    run, "pass_at_k": {k: (mean, SD)}, "retention": mean}. SD is the sample SD (None below 2 seeds);
    a k that the cells lack (fewer samples per problem than k) is left out; retention is None when
    no cell measured it.
    """
    scores = [cell_score(c, score) for c in cells if c is not None]
    done = [s for s in scores if s is not None]
    pass_at_k = {}
    for k in ks:
        values = [s[0][str(k)] for s in done if str(k) in s[0]]
        if values and len(values) == len(done):
            pass_at_k[str(k)] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None)
    retention = [s[1] for s in done if s[1] is not None]
    return {"seeds": len(done), "no_promotion": len(scores) - len(done), "missing": sum(c is None for c in cells),
            "pass_at_k": pass_at_k, "retention": statistics.mean(retention) if retention else None}


def questions_table(cells: dict[str, list[dict | None]]) -> str:
    """Diagnostics of the extra questions each method trained on (SOAR_SPEC §9's diversity and
    "structure vs correctness"), mean over the seeds that have them: count, Vendi score, duplicate
    rate and, where the task knows the truth (toy world), the share well-formed, correct and useful
    stepping stones. Methods without extra questions are left out; "" when none has any."""
    lines = []
    for method, method_cells in cells.items():
        stats = [c["questions"] for c in method_cells if c and c.get("questions")]
        if not stats:
            continue
        def mean(key, sub=None):
            values = [(s.get(sub) or {}).get(key) if sub else s.get(key) for s in stats]
            values = [v for v in values if v is not None]
            return statistics.mean(values) if values else None
        pct = lambda x: "–" if x is None else f"{100 * x:.1f}"  # noqa: E731
        lines.append(f"| {LABELS.get(method, method)} | {mean('count'):.0f} | {mean('vendi'):.1f} | "
                     f"{pct(mean('duplicate_rate'))} | {pct(mean('well_formed', 'truth'))} | "
                     f"{pct(mean('correct', 'truth'))} | {pct(mean('stepping_stone', 'truth'))} | {len(stats)} |")
    if not lines:
        return ""
    header = ("| method | questions | Vendi | duplicates (%) | well-formed (%) | correct (%) | stepping stones (%) | seeds |\n"
              "|---|---|---|---|---|---|---|---|")
    return header + "\n" + "\n".join(lines) + "\n"


def question_diagnostics(problems: list[dict], truth=None) -> dict:
    """question_stats of a set of problems, with the task's truth about them when it has one."""
    stats = question_stats([p["question"] for p in problems])
    if truth is not None:
        stats["truth"] = truth(problems)
    return stats


def mean_sd(xs: list[float]) -> str:
    """Per-seed scores as "mean ± SD" (SD 0 for one seed; "–" for none), for the research scripts."""
    if not xs:
        return "  –"
    return f"{statistics.mean(xs):5.1f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:4.1f}"


def seed_summary(results: list[dict], k: str = "32") -> str:
    """Fresh students over seeds: pass@k mean ± SD, mean and lowest retention, and the per-seed pass@k."""
    scores = [r["pass_at_k"][k] for r in results]
    retention = [r["retention"] for r in results]
    return (f"pass@{k} {mean_sd(scores)}  retention {statistics.mean(retention):.2f} (lowest {min(retention):.2f})  "
            f"per seed {[round(x, 1) for x in scores]}")


def format_mean_sd(mean: float, sd: float | None) -> str:
    return f"{mean:.1f}" if sd is None else f"{mean:.1f} ± {sd:.1f}"


def row_cells(row: dict, ks: tuple[int, ...] = PASS_KS) -> list[str]:
    """The pass@k, retention and seeds cells of one method's table row."""
    if not row["seeds"]:
        empty = NO_PROMOTION if row["no_promotion"] else "–"
        values = [empty] * len(ks) + ["–"]
    else:
        values = [format_mean_sd(*row["pass_at_k"][str(k)]) if str(k) in row["pass_at_k"] else "–" for k in ks]
        values.append("–" if row["retention"] is None else f"{row['retention']:.2f}")
    seeds = str(row["seeds"])
    notes = [f"{row['no_promotion']} no promotion" if row["no_promotion"] else "",
             f"{row['missing']} not run" if row["missing"] else ""]
    notes = [n for n in notes if n]
    return values + [seeds + (f" ({', '.join(notes)})" if notes else "")]


def markdown_table(rows: dict[str, dict], ks: tuple[int, ...] = PASS_KS) -> str:
    """Table 4's layout: one row per method, pass@k (%) mean ± SD over seeds per column."""
    header = ["method", *(f"pass@{k}" for k in ks), "retention", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for method, row in rows.items():
        lines.append("| " + " | ".join([LABELS.get(method, method), *row_cells(row, ks)]) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: dict[str, dict], ks: tuple[int, ...] = PASS_KS) -> str:
    """One line per method: seeds, no-promotion and not-run counts, mean and SD per k, retention (empty: none)."""
    def num(x: float | None) -> str:
        return "" if x is None else f"{x:.4f}"

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", "seeds", "no_promotion", "missing",
                     *(f"pass@{k}_{stat}" for k in ks for stat in ("mean", "sd")), "retention"])
    for method, row in rows.items():
        stats = [num(x) for k in ks for x in row["pass_at_k"].get(str(k), (None, None))]
        writer.writerow([method, row["seeds"], row["no_promotion"], row["missing"], *stats, num(row["retention"])])
    return buf.getvalue()


def read_cells(out: Path, methods: list[str], seeds: int) -> dict[str, list[dict | None]]:
    """The finished cells of each method (out/<method>/seed<S>/result.json), None where not run."""
    paths = {m: [out / m / f"seed{s}" / "result.json" for s in range(seeds)] for m in methods}
    return {m: [json.loads(p.read_text()) if p.exists() else None for p in ps] for m, ps in paths.items()}


def collect(out: Path, methods: list[str], seeds: int, score: str) -> dict[str, dict]:
    """Aggregate the finished cells of each method."""
    return {m: aggregate(cells, score) for m, cells in read_cells(out, methods, seeds).items()}


def write_tables(cfg: CompareConfig, rows: dict[str, dict]) -> str:
    """compare.md, compare.csv and compare_pass_at_k.png in cfg.out; returns the Markdown table."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows)
    score = ("the slope rule (mean of the evaluations after the checkpoint where the smoothed training-reward "
             "slope drops below 15% of its maximum)" if cfg.score == "slope-rule" else "the final evaluation")
    text = ["# SOAR comparison", "",
            f"pass@k on D_test (%), mean ± SD over seeds (SD needs 2 seeds); fresh students scored by {score}.", "",
            table,
            "Retention: greedy accuracy on easy problems (toy world: carry-free), mean over seeds. "
            f"{NO_PROMOTION}: the method's SOAR run promoted no student, so it has no PQ, PS or "
            "no-selection result.", "", "![pass@k](compare_pass_at_k.png)", ""]
    questions = questions_table(read_cells(out, cfg.methods, cfg.seeds))
    if questions:
        text += ["## The questions each method trained on", "",
                 "Mean over seeds; Vendi score over character n-gram TF-IDF embeddings (1 = all identical).", "",
                 questions]
    (out / "compare.md").write_text("\n".join(text))
    (out / "compare.csv").write_text(csv_table(rows))
    plot_pass_at_k({f"{LABELS[m]} (n={row['seeds']})": row["pass_at_k"] for m, row in rows.items() if row["pass_at_k"]},
                   out / "compare_pass_at_k.png")
    return table


# ---------------------------------------------------------------- running the cells

def run_compare(cfg: CompareConfig) -> dict[str, dict]:
    """Run every unfinished cell (unless collect_only), then write and print the tables; returns the rows."""
    check(cfg)
    out = Path(cfg.out)
    if not cfg.collect_only:
        run_cells(cfg)
    rows = collect(out, cfg.methods, cfg.seeds, cfg.score)
    table = write_tables(cfg, rows)
    log(table + f"\n{out / 'compare.md'}, {out / 'compare.csv'}, {out / 'compare_pass_at_k.png'}")
    return rows


def run_cells(cfg: CompareConfig) -> None:
    t_start = time.time()
    out = Path(cfg.out)
    if cfg.model is None:
        from soar.tasks.toy import build
        model = str(build(cfg.toy))
    else:
        model = cfg.model
    toy = Path(model) if cfg.task == "toy" else None
    hard_set = cfg.hard_set
    if hard_set is None:
        from soar.demo import toy_hard_set
        hard_set = str(out / "hard_set")
        train, test = toy_hard_set(toy, Path(hard_set), cfg.candidates, seed=0)
        log(f"hard set: {len(train)} train / {len(test)} test in {hard_set}")
    retention = cfg.fresh.retention or (str(toy / "easy.jsonl") if toy else None)
    oracle = cfg.oracle or (str(toy / "oracle_curriculum.jsonl") if toy else None)
    fresh = dataclasses.replace(cfg.fresh, model=model, hard_set=hard_set, task=cfg.task, retention=retention)
    soar = dataclasses.replace(cfg.soar, model=model, hard_set=hard_set, task=cfg.task,
                               retention=cfg.soar.retention or retention)

    def soar_run(name: str, seed: int) -> SoarConfig:
        """The SOAR run `name` of `seed`, run (or finished) first if needed."""
        run_cfg = dataclasses.replace(soar, out=str(out / "runs" / name / f"seed{seed}"), seed=seed,
                                      **RUN_SETTINGS[name])
        state = Path(run_cfg.out) / "state.json"
        if not state.exists() or json.loads(state.read_text())["step"] < run_cfg.outer_steps:
            t0 = time.time()
            log(f"SOAR run {name} seed {seed}: start ({time.time() - t_start:.0f}s elapsed)")
            result = run(run_cfg, resume=state.exists())
            log(f"SOAR run {name} seed {seed}: {len(result['promotions'])} promotion(s) in {time.time() - t0:.0f}s")
        return run_cfg

    def run_cell(method: str, seed: int, cell: Path) -> dict | None:
        student = dataclasses.replace(fresh, out=str(cell), seed=seed, extra=None)
        if method == "hard-only":
            return fresh_student(student)
        if method == "hard-only-4x":
            group = dataclasses.replace(student.student, group_size=4 * student.student.group_size)
            return fresh_student(dataclasses.replace(student, student=group))
        if method == "oracle":
            return fresh_student(dataclasses.replace(student, extra=oracle))
        if method == "base-t":
            return teacher_sampling(model, student, cfg.num_questions, soar.teacher_max_new_tokens,
                                    soar.max_teacher_rounds)
        run_cfg = soar_run(RUN_OF[method], seed)
        if method == "soar-pq":
            return promoted_questions(run_cfg, student)
        if method == "soar-ps":
            return promoted_student(run_cfg, student)
        if method == "no-selection":
            return no_selection(run_cfg, student)
        # intrinsic-t, grounded-t-no-promotion: teacher sampling from the run's final teacher
        return teacher_sampling(run_cfg.out, student, cfg.num_questions, soar.teacher_max_new_tokens,
                                soar.max_teacher_rounds)

    truth = load_task("toy").truth if cfg.task == "toy" else None  # what the toy world knows of questions
    cells = [(method, seed) for seed in range(cfg.seeds) for method in cfg.methods]
    for i, (method, seed) in enumerate(cells, 1):
        cell = out / method / f"seed{seed}"
        if (cell / "result.json").exists():
            log(f"[{i}/{len(cells)}] {method} seed {seed}: done already")
            continue
        t0 = time.time()
        log(f"[{i}/{len(cells)}] {method} seed {seed}: start ({t0 - t_start:.0f}s elapsed)")
        result = run_cell(method, seed, cell)
        row = {"method": method, "seed": seed,
               **(result if result is not None else {"pass_at_k": None, "status": "no promotion"})}
        trained_on = cell / "teacher_questions.jsonl" if method != "soar-pq" else \
            out / "runs" / "soar" / f"seed{seed}" / "promoted_questions.jsonl"
        if result is not None and trained_on.exists():
            row["questions"] = question_diagnostics(read_jsonl(trained_on), truth)
        write_json(cell / "result.json", row)
        k = None if result is None else max(result["pass_at_k"], key=int)
        summary = NO_PROMOTION if result is None else f"pass@{k} {result['pass_at_k'][k]:.1f}% (final)"
        log(f"[{i}/{len(cells)}] {method} seed {seed}: {summary} in {time.time() - t0:.0f}s "
            f"({time.time() - t_start:.0f}s elapsed)")
