"""The human-readable report of a demo run: PNG plots and a Markdown page next to summary.json."""

from __future__ import annotations

from pathlib import Path

from soar.diagnostics import toy_truth_stats
from soar.evaluation import PASS_KS
from soar.runs import read_jsonl

ARM_LABELS = {"base": "base model", "hard_only": "Hard-Only", "base_t": "Base-T", "no_selection": "no selection",
              "soar_pq": "SOAR-PQ", "soar_ps": "SOAR-PS", "oracle": "oracle curriculum"}


def stepping_stone_share(run_dir: Path) -> list[float]:
    """Share of useful stepping stones (toy truth) among the teacher's questions, per outer step."""
    return [toy_truth_stats(read_jsonl(path))["stepping_stone"]
            for path in sorted((run_dir / "questions").glob("step_*.jsonl"))]


def plot_teacher(metrics: list[dict], shares: list[float] | None, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [m["step"] + 1 for m in metrics]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, [m["teacher/mean_reward"] for m in metrics], "o-", ms=3, label="mean dataset reward R̂")
    ax.plot(steps, [m["teacher/moving_average"] for m in metrics], "-", label="moving average R̄")
    for m in metrics:
        if m["promotion"]:
            ax.axvline(m["step"] + 1, color="tab:green", ls="--", lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("outer step (dashed: promotion)")
    ax.set_ylabel("teacher reward")
    if shares:
        twin = ax.twinx()
        twin.plot(steps[:len(shares)], [100 * s for s in shares], color="tab:red", alpha=0.6, label="stepping stones %")
        twin.set_ylabel("useful stepping stones (%)", color="tab:red")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pass_at_k(curves: dict[str, dict[str, tuple[float, float | None]]], path: Path) -> None:
    """pass@k curves: {label: {k: (mean, SD or None)}}, with a ±SD band where given, k on a log scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, points in curves.items():
        ks = sorted(points, key=int)
        mean = [points[k][0] for k in ks]
        sd = [points[k][1] or 0.0 for k in ks]
        line, = ax.plot([int(k) for k in ks], mean, "o-", ms=3, label=label)
        if any(sd):
            ax.fill_between([int(k) for k in ks], [max(0.0, m - s) for m, s in zip(mean, sd)],
                            [min(100.0, m + s) for m, s in zip(mean, sd)], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks([int(k) for k in PASS_KS], [str(k) for k in PASS_KS])
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k on D_test (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def no_promotion_note(metrics: list[dict], reward_metric: str | None) -> list[str]:
    """Report lines saying why a run never promoted: how many dataset rewards were exactly zero."""
    rewards = [r for m in metrics for r in m["teacher/dataset_rewards"]]
    zero = sum(r == 0 for r in rewards)
    lines = ["## No promotion", "",
             f"The moving average of the teacher reward never passed the promotion threshold in {len(metrics)} outer "
             f"steps: {zero} of {len(rewards)} dataset rewards were exactly 0, so the teacher got "
             + ("no signal." if zero == len(rewards) else "little signal.")]
    if reward_metric != "logprob" and zero > len(rewards) // 2:
        lines.append("An accuracy reward on problems the student solves 0 times rarely moves within a few inner steps "
                     "at toy scale. The README's section \"The targets in the default world\" runs 80 outer steps with "
                     "the dense reward (`reward_metric = \"logprob\"`, an extension), where the toy world promotes.")
    return lines + [""]


def write_report(out: Path, summary: dict, run_dir: Path, toy: bool) -> Path:
    """Plots and report.md in `out`; returns the report's path."""
    metrics = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
    shares = stepping_stone_share(run_dir) if toy and metrics else None
    if metrics:
        plot_teacher(metrics, shares, out / "teacher_reward.png")
    plot_pass_at_k({ARM_LABELS.get(arm, arm): {k: (v, None) for k, v in values.items()}
                    for arm, values in summary["pass_at_k"].items() if values}, out / "pass_at_k.png")
    lines = ["# SOAR demo report", "",
             f"Seed {summary['seed']}, {summary['outer_steps']} outer steps, {summary['promotions']} promotion(s), "
             f"hard set {summary['hard_set']['train']} train / {summary['hard_set']['test']} test, "
             f"{summary['wall_seconds']:.0f} s in all"
             + (f"; toy model weights sha256 {summary['toy_weights_sha256'][:12]}." if summary.get("toy_weights_sha256") else "."), "",
             "## pass@k on D_test (%)", "", "| arm | " + " | ".join(f"pass@{k}" for k in ("1", "4", "8", "16", "32"))
             + " | retention |", "|---|" + "---|" * 6]
    for arm, values in summary["pass_at_k"].items():
        cells = [f"{values[k]:.1f}" if values else "–" for k in ("1", "4", "8", "16", "32")]
        ret = summary["retention"].get(arm)
        lines.append(f"| {ARM_LABELS[arm]} | " + " | ".join(cells) + f" | {'–' if ret is None else f'{ret:.2f}'} |")
    lines += ["", "Retention: greedy accuracy on carry-free problems; an arm that lost them learned a wrong rule.",
              "A dash: the arm does not apply (no promotion means no PS, PQ or no-selection result).", "",
              "![pass@k](pass_at_k.png)", ""]
    if metrics:
        lines += ["## The teacher", "", "![teacher reward](teacher_reward.png)", ""]
        if shares:
            lines.append(f"Useful stepping stones in the teacher's output: {100 * shares[0]:.1f}% at the first step, "
                         f"{100 * sum(shares[-3:]) / len(shares[-3:]):.1f}% over the last three.")
            lines.append("")
        for title, step in (("Early", 0), ("Late", len(metrics) - 1)):
            rows = read_jsonl(run_dir / "questions" / f"step_{step:04d}.jsonl")
            lines += [f"### {title} teacher questions (outer step {step + 1})", "", "| dataset | reward | question | answer |",
                      "|---|---|---|---|"]
            for row in rows[:: max(1, len(rows) // 8)][:8]:
                lines.append(f"| {row['dataset']} | {row['dataset_reward']:+.4f} | `{row['question']}` | `{row['answer']}` |")
            lines.append("")
    if metrics and not summary["promotions"]:
        lines += no_promotion_note(metrics, summary.get("reward_metric"))
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
