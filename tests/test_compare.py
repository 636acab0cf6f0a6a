"""`soar compare`: aggregation and tables as pure functions, and the command end to end on a tiny toy world."""

import csv
import io
import json
import shutil

import pytest

from soar.cli import main
from soar.compare import NO_PROMOTION, aggregate, cell_score, csv_table, markdown_table, row_cells


def fresh_cell(final: dict, slope: dict, retention: float = 1.0) -> dict:
    return {"pass_at_k": final, "retention": retention, "pass_at_k_slope_rule": slope,
            "retention_slope_rule": retention - 0.5}


NULL = {"pass_at_k": None, "status": "no promotion"}


def test_cell_score_picks_the_protocols_score():
    cell = fresh_cell({"1": 1.0}, {"1": 2.0})
    assert cell_score(cell, "final") == ({"1": 1.0}, 1.0)
    assert cell_score(cell, "slope-rule") == ({"1": 2.0}, 0.5)
    ps = {"pass_at_k": {"1": 3.0}, "retention": 0.9}  # a promoted student: one evaluation, no curve
    assert cell_score(ps, "slope-rule") == cell_score(ps, "final") == ({"1": 3.0}, 0.9)
    assert cell_score(NULL, "final") is None


def test_aggregate_mean_and_sample_sd_over_seeds():
    cells = [fresh_cell({"1": 1.0, "32": 10.0}, {}, 1.0), fresh_cell({"1": 3.0, "32": 20.0}, {}, 0.8),
             fresh_cell({"1": 5.0, "32": 30.0}, {}, 0.9)]
    row = aggregate(cells, "final", ks=(1, 32))
    assert row["seeds"] == 3 and row["no_promotion"] == row["missing"] == 0
    assert row["pass_at_k"]["1"] == pytest.approx((3.0, 2.0))  # SD with n - 1
    assert row["pass_at_k"]["32"] == pytest.approx((20.0, 10.0))
    assert row["retention"] == pytest.approx(0.9)


def test_aggregate_counts_cells_without_promotion_and_cells_not_run():
    row = aggregate([fresh_cell({"1": 4.0}, {}), NULL, None], "final", ks=(1, 4))
    assert (row["seeds"], row["no_promotion"], row["missing"]) == (1, 1, 1)
    assert row["pass_at_k"] == {"1": (4.0, None)}  # one seed: no SD; k = 4 was not measured
    assert row_cells(row, ks=(1, 4)) == ["4.0", "–", "1.00", "1 (1 no promotion, 1 not run)"]
    nothing = aggregate([NULL, NULL], "slope-rule")
    assert (nothing["seeds"], nothing["no_promotion"], nothing["retention"]) == (0, 2, None)
    assert row_cells(nothing, ks=(1, 4)) == [NO_PROMOTION, NO_PROMOTION, "–", "0 (2 no promotion)"]
    assert row_cells(aggregate([None], "final"), ks=(1,)) == ["–", "–", "0 (1 not run)"]


def test_tables_have_the_layout_of_table_4():
    rows = {"hard-only": aggregate([fresh_cell({"1": 0.5, "4": 1.0}, {}), fresh_cell({"1": 1.5, "4": 3.0}, {})], "final"),
            "soar-pq": aggregate([NULL, NULL], "final")}
    md = markdown_table(rows, ks=(1, 4))
    assert md.splitlines() == [
        "| method | pass@1 | pass@4 | retention | seeds |",
        "|---|---|---|---|---|",
        "| Hard-Only | 1.0 ± 0.7 | 2.0 ± 1.4 | 1.00 | 2 |",
        f"| SOAR-PQ | {NO_PROMOTION} | {NO_PROMOTION} | – | 0 (2 no promotion) |"]
    table = list(csv.DictReader(io.StringIO(csv_table(rows, ks=(1, 4)))))
    assert [r["method"] for r in table] == ["hard-only", "soar-pq"]
    assert table[0]["pass@1_mean"] == "1.0000" and table[0]["pass@4_sd"] == "1.4142" and table[0]["retention"] == "1.0000"
    assert table[1]["seeds"] == "0" and table[1]["no_promotion"] == "2" and table[1]["pass@1_mean"] == ""


def test_unknown_method_is_a_clear_error(capsys):
    assert main(["compare", "--methods", "hard-only", "soar-xl", "--collect-only"]) == 2
    assert "soar-xl" in capsys.readouterr().err


def test_compare_end_to_end_resumes_and_reproduces(tiny_toy, tmp_path, capsys):
    toy_dir, _ = tiny_toy
    out = tmp_path / "cmp"
    args = ["compare", "--out", str(out), "--model", str(toy_dir), "--seeds", "2", "--candidates", "16",
            "--methods", "hard-only", "soar-pq", "soar-ps",
            "--fresh.steps", "2", "--fresh.eval-every", "1", "--fresh.eval-samples", "4",
            "--fresh.student.batch-questions", "2", "--fresh.student.group-size", "4",
            # a forced promotion: any dense reward beats the threshold
            "--soar.outer-steps", "1", "--soar.group-size", "2", "--soar.dataset-size", "4", "--soar.num-repeats", "1",
            "--soar.num-reward-questions", "4", "--soar.inner-steps", "1", "--soar.promotion-threshold", "-1e9",
            "--soar.reward-metric", "logprob", "--soar.student.batch-questions", "2", "--soar.student.group-size", "4"]
    assert main(args) == 0
    for method in ("hard-only", "soar-pq", "soar-ps"):
        for seed in (0, 1):
            cell = json.loads((out / method / f"seed{seed}" / "result.json").read_text())
            assert (cell["method"], cell["seed"]) == (method, seed) and set(cell["pass_at_k"]) == {"1", "4"}
    assert sorted(p.name for p in (out / "runs" / "soar").iterdir()) == ["seed0", "seed1"]  # one run per seed
    md, questions = (out / "compare.md").read_text().split("## The questions each method trained on")
    assert [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ") and "---" not in line] == \
        ["| method", "| Hard-Only", "| SOAR-PQ", "| SOAR-PS"]
    # Only PQ trained on extra questions: the 4 of the one promoted dataset per seed.
    assert [line.split(" | ")[:2] for line in questions.splitlines() if line.startswith("| S")] == [["| SOAR-PQ", "4"]]
    assert "| Hard-Only |" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["method"] for r in rows] == ["hard-only", "soar-pq", "soar-ps"] and all(r["seeds"] == "2" for r in rows)
    assert rows[0]["pass@32_mean"] == ""  # 4 samples per problem: no pass@32
    assert (out / "compare_pass_at_k.png").stat().st_size > 0

    # Rerunning a cell with the same seed gives the same numbers; finished cells are skipped.
    before = {m: json.loads((out / m / "seed1" / "result.json").read_text()) for m in ("hard-only", "soar-pq")}
    for m in before:
        (out / m / "seed1" / "result.json").unlink()
    untouched = (out / "soar-ps" / "seed0" / "result.json").stat().st_mtime_ns
    assert main(args) == 0
    for m, old in before.items():
        new = json.loads((out / m / "seed1" / "result.json").read_text())
        assert (new["pass_at_k"], new["pass_at_k_slope_rule"], new["train_reward"]) == \
            (old["pass_at_k"], old["pass_at_k_slope_rule"], old["train_reward"])
    assert (out / "soar-ps" / "seed0" / "result.json").stat().st_mtime_ns == untouched

    # --collect-only tabulates what is there: a run without promotion shows as such.
    shutil.rmtree(out / "soar-pq" / "seed1")
    (out / "soar-pq" / "seed0" / "result.json").write_text(json.dumps({"method": "soar-pq", "seed": 0, **NULL}))
    assert main(["compare", "--out", str(out), "--seeds", "2", "--methods", "hard-only", "soar-pq", "--collect-only"]) == 0
    assert f"| SOAR-PQ | {NO_PROMOTION} |" in (out / "compare.md").read_text()
    assert not (out / "soar-pq" / "seed1").exists()


def test_questions_table_means_over_seeds_and_skips_methods_without_questions():
    from soar.compare import question_diagnostics, questions_table
    from soar.diagnostics import toy_truth_stats

    same = question_diagnostics([{"question": "0001+0002=", "answer": "00003"}] * 4, toy_truth_stats)
    assert same["vendi"] == pytest.approx(1.0) and same["duplicate_rate"] == 0.75
    mixed = question_diagnostics([{"question": "0471+3852=", "answer": "04323"},
                                  {"question": "12+3=", "answer": "015"}], toy_truth_stats)
    table = questions_table({"hard-only": [{"pass_at_k": {}}], "intrinsic-t": [{"questions": same}, {"questions": mixed}]})
    lines = table.strip().splitlines()
    assert len(lines) == 3 and lines[2].startswith("| Intrinsic-T | 3 |")
    # stepping stones: 0 % (seed 0) and 50 % (seed 1) -> 25.0; well-formed 100 % and 50 % -> 75.0
    assert "| 75.0 |" in lines[2] and lines[2].endswith("| 25.0 | 2 |")
    assert questions_table({"hard-only": [None]}) == ""


def test_seed_summary_of_fresh_students():
    from soar.compare import mean_sd, seed_summary

    results = [{"pass_at_k": {"32": 10.0}, "retention": 0.9}, {"pass_at_k": {"32": 20.0}, "retention": 1.0}]
    assert seed_summary(results) == "pass@32  15.0 ±  7.1  retention 0.95 (lowest 0.90)  per seed [10.0, 20.0]"
    assert mean_sd([3.0]) == "  3.0 ±  0.0" and mean_sd([]) == "  –"
