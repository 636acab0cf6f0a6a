"""End-to-end runs of the real `soar` commands on a tiny toy world (seconds, not minutes)."""

import json
import subprocess
import sys

import pytest

from soar.cli import main
from soar.hardset import split_train_test
from soar.runs import read_jsonl, read_problems


def test_split_is_seeded_disjoint_and_complete():
    problems = [{"id": str(i), "question": f"q{i}", "answer": "a"} for i in range(11)]
    train, test = split_train_test(problems, seed=3)
    assert (len(train), len(test)) == (6, 5)
    assert sorted(p["id"] for p in train + test) == sorted(p["id"] for p in problems)
    assert split_train_test(problems, seed=3) == (train, test)
    assert split_train_test(problems, seed=4) != (train, test)


def test_filter_eval_and_baselines(tiny_toy, tmp_path, capsys):
    toy_dir, _ = tiny_toy
    hard = tmp_path / "hard"
    assert main(["filter", "--model", str(toy_dir), "--problems", str(toy_dir / "hard_candidates.jsonl"),
                 "--out", str(hard), "--k", "4"]) == 0
    manifest = json.loads((hard / "manifest.json").read_text())
    train, test = read_problems(hard / "train.jsonl"), read_problems(hard / "test.jsonl")
    assert manifest["train"] == len(train) and manifest["test"] == len(test) and manifest["k"] == 4
    assert manifest["hard"] + manifest["solved_at_least_once"] == manifest["candidates"] == 24
    assert len(manifest["source_sha256"]) == 64
    assert not {p["id"] for p in train} & {p["id"] for p in test}

    assert main(["eval", "--model", str(toy_dir), "--problems", str(toy_dir / "easy.jsonl"), "--samples", "8",
                 "--out", str(tmp_path / "eval.json")]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(result["pass_at_k"]) == {"1", "4", "8"}
    assert 0.0 <= result["pass_at_k"]["1"] <= result["pass_at_k"]["4"] <= result["pass_at_k"]["8"] <= 100.0
    assert "pass@k" in capsys.readouterr().out

    common = ["--model", str(toy_dir), "--hard-set", str(hard), "--steps", "2", "--eval-every", "1",
              "--eval-samples", "4", "--student.batch-questions", "2", "--student.group-size", "4",
              "--retention", str(toy_dir / "easy.jsonl")]
    assert main(["hard-only", "--out", str(tmp_path / "ho"), *common]) == 0
    curve = read_jsonl(tmp_path / "ho" / "curve.jsonl")
    assert [p["step"] for p in curve] == [0, 1, 2] and "retention" in curve[-1]
    assert json.loads((tmp_path / "ho" / "config.json").read_text())["steps"] == 2
    assert main(["oracle", "--out", str(tmp_path / "or"), "--extra", str(toy_dir / "oracle_curriculum.jsonl"),
                 *common]) == 0
    assert json.loads((tmp_path / "or" / "result.json").read_text())["num_extra"] == 16
    assert main(["base-t", "--num-questions", "6", *[f"--run.{a[2:]}" if a.startswith("--") else a for a in
                 ["--out", str(tmp_path / "bt"), *common]]]) == 0
    assert len(read_problems(tmp_path / "bt" / "teacher_questions.jsonl")) == 6


def test_bad_input_gives_clear_errors(tiny_toy, tmp_path):
    toy_dir, _ = tiny_toy
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1=", "answer": "2"}\n{"question": oops}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        main(["eval", "--model", str(toy_dir), "--problems", str(bad)])
    assert main(["oracle", "--model", str(toy_dir), "--hard-set", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert main(["nonsense"]) == 2


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "soar.cli", "filter", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--k" in out.stdout
