"""The toy world: arithmetic ground truth, tokenizer, HF round trip, cached deterministic builds."""

import hashlib
import json
import random
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from soar.tasks import load_task
from soar.tasks.toy import (SHIPPED_WEIGHTS, TEACH, ToyConfig, build, build_tokenizer, carry_columns, is_hard,
                            noisy_sum, parse_question, parse_teacher_output, problem_truth, teacher_corpus_figures,
                            teacher_line, true_answer, weights_sha256)

EARLIER = ToyConfig(teacher_carry_keep=0.4, teacher_carry_mix=(0.6, 0.16, 0.12, 0.08, 0.04), pretrain_steps=1200)
SHIPPED_CONFIGS = [ToyConfig(), EARLIER]


@pytest.mark.parametrize("a, b, carries", [
    (1234, 4321, [False] * 4),
    (9, 1, [True, False, False, False]),
    (9999, 1, [True] * 4),
    (5050, 5050, [False, True, False, True]),
    (471, 3852, [False, True, True, False]),
])
def test_carry_columns(a, b, carries):
    assert carry_columns(a, b, 4) == carries


def test_noisy_sum_is_exact_when_carries_kept_and_drops_them_otherwise():
    rng = random.Random(0)
    assert noisy_sum(471, 3852, 4, 1.0, rng) == "04323"
    assert noisy_sum(471, 3852, 4, 0.0, rng) == "03223"  # both carries dropped
    assert noisy_sum(1234, 4321, 4, 0.0, rng) == "05555"  # nothing to drop


def test_hard_problems_defeat_position_rules(tiny_toy):
    """Hard problems have a non-carrying lower column: carrying everywhere, or into every digit, fails."""
    path, cfg = tiny_toy
    rows = [json.loads(line) for line in (path / "hard_candidates.jsonl").read_text().splitlines()]
    for row in rows:
        a, b = parse_question(row["question"])
        assert is_hard(a, b, 4, 3) and carry_columns(a, b, 4)[-1] and sum(carry_columns(a, b, 4)) == 3
        col = lambda i: (a // 10**i) % 10 + (b // 10**i) % 10  # noqa: E731
        everywhere = sum((col(i) + (i > 0)) % 10 * 10**i for i in range(4)) + 10**4
        into_every_digit_but_top = sum((col(i) + (i > 0)) % 10 * 10**i for i in range(4)) + (col(3) + 1 >= 10) * 10**4
        for wrong in (everywhere, into_every_digit_but_top):
            assert str(wrong).zfill(5) != row["answer"]
    assert not is_hard(9999, 1, 4, 3)  # 4 carries


def test_problem_truth_and_teacher_parse():
    assert parse_teacher_output("0471+3852=04323") == ("0471+3852=", "04323")
    assert parse_teacher_output("0471+3852=0432") == "wrong_width"
    assert parse_teacher_output("0471+38") == "malformed"
    assert problem_truth("0471+3852=", "04323") == {"carries": 2, "top_carry": False, "correct": True,
                                                     "stepping_stone": True, "too_high": False}
    assert problem_truth("8827+6121=", "14948")["top_carry"] is True  # one carry, out of the top column
    assert problem_truth("0471+3852=", "03223")["correct"] is False  # carries dropped: too low
    assert problem_truth("0471+3852=", "03223")["too_high"] is False
    assert problem_truth("1234+4321=", "06665")["too_high"] is True  # carries where there are none
    assert problem_truth("1234+4321=", "05555")["stepping_stone"] is False  # correct but carry-free
    assert true_answer("0471+3852=") == "04323" and true_answer("0001+0002=") == "00003"


def test_tokenizer_round_trip():
    tok = build_tokenizer()
    ids = tok("<teach>0471+3852=04323")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<s>", "<teach>"] + list("0471+3852=04323")
    assert tok.decode(ids, skip_special_tokens=True) == "0471+3852=04323"


def test_toy_task_grades_exact_answers():
    task = load_task("toy")
    assert task.grade(["04323", " 04323", "04322", ""], ["04323"] * 4) == [True, True, False, False]


def test_build_is_hf_loadable_cached_and_deterministic(tiny_toy, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, cfg = tiny_toy
    for name in ("config.json", "model.safetensors", "tokenizer.json", "hard_candidates.jsonl", "easy.jsonl",
                 "oracle_curriculum.jsonl", "toy_world.json"):
        assert (path / name).exists(), name
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.vocab_size == len(tok)
    t0 = time.time()
    assert build(cfg, path, log=lambda *_: None) == path  # cached: no retraining
    assert time.time() - t0 < 1.0
    again = build(cfg, tmp_path / "again", log=lambda *_: None)  # same seed, fresh build: same weights
    other = AutoModelForCausalLM.from_pretrained(again)
    for (n, p), (_, q) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(p, q), n
    recorded = json.loads((again / "toy_world.json").read_text())["weights_sha256"]
    assert recorded == weights_sha256(again) == weights_sha256(path)
    assert (again / "hard_candidates.jsonl").read_text() == (path / "hard_candidates.jsonl").read_text()
    rows = [json.loads(line) for line in (path / "oracle_curriculum.jsonl").read_text().splitlines()]
    truths = [problem_truth(r["question"], r["answer"]) for r in rows]
    assert all(t["correct"] and t["carries"] in cfg.curriculum_carries for t in truths)


@pytest.mark.parametrize("cfg", SHIPPED_CONFIGS, ids=["default", "earlier q_T 0.4"])
def test_shipped_worlds_take_their_weights_bit_for_bit(cfg, tmp_path):
    """Every machine gets the same models (pretraining them would depend on the CPU's kernels)."""
    path = build(cfg, tmp_path / "toy", log=lambda *_: None)
    record = json.loads((path / "toy_world.json").read_text())
    shipped = SHIPPED_WEIGHTS / f"toy-{cfg.fingerprint()}.safetensors"
    assert record["weights"] == "shipped"
    assert record["weights_sha256"] == weights_sha256(path) == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert weights_sha256(shipped) == record["weights_sha256"]
    # A cached build with other weights (pretrained on another machine) is kept, and the build says so.
    weights = load_file(path / "model.safetensors")
    weights["model.norm.weight"] += 1e-3
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    notes = []
    assert build(cfg, path, log=notes.append) == path
    assert any("not the shipped ones" in note for note in notes), notes


def test_teacher_corpus_figures_are_what_the_teacher_lines_hold():
    cfg = ToyConfig()
    expected = teacher_corpus_figures(cfg)
    assert expected["correct"] == pytest.approx(0.8 + 0.08 * 0.7 + 0.06 * 0.7**2 + 0.04 * 0.7**3 + 0.02 * 0.7**4)
    rng = random.Random(0)
    truths = [problem_truth(line[len(TEACH):len(TEACH) + 10], line[len(TEACH) + 10:])
              for line in (teacher_line(rng, cfg) for _ in range(20000))]
    assert abs(sum(t["correct"] for t in truths) / 20000 - expected["correct"]) < 0.01
    assert abs(sum(t["stepping_stone"] for t in truths) / 20000 - expected["stones"]) < 0.01
    for c in range(5):
        assert abs(sum(t["carries"] == c for t in truths) / 20000 - expected[f"carries={c}"]) < 0.01


def test_shipped_teacher_writes_close_to_its_corpus(tmp_path):
    """The default world's 4,000-step pretraining is faithful: the untrained teacher's problems and
    answers are distributed as in its corpus (what SOAR can do depends on them). After 1,200 steps its
    answers were 53-85% correct over three seeds, against the corpus's 90%."""
    from soar.baselines import teacher_questions
    from soar.generation import HFGenerator
    from soar.models import load_model, load_tokenizer

    cfg = ToyConfig()
    path = build(cfg, tmp_path / "toy", log=lambda *_: None)
    gen = HFGenerator(load_model(str(path)), load_tokenizer(str(path)))
    problems, _, _ = teacher_questions(gen, load_task("toy"), 800, seed=5, max_new_tokens=24)
    truths = [problem_truth(p["question"], p["answer"]) for p in problems]
    expected = teacher_corpus_figures(cfg)
    assert abs(sum(t["correct"] for t in truths) / 800 - expected["correct"]) < 0.06
    assert abs(sum(t["carries"] == 0 for t in truths) / 800 - expected["carries=0"]) < 0.08
    assert sum(t["too_high"] for t in truths) / 800 < 0.03


def test_reference_logprob_matches_a_direct_computation(tiny_toy):
    from soar.evaluation import reference_logprob
    from soar.models import load_model, load_tokenizer

    path, _ = tiny_toy
    model, tok = load_model(str(path)), load_tokenizer(str(path))
    problems = [{"question": "0471+3852=", "answer": "04323"}, {"question": "1234+4321=", "answer": "05555"}]
    expected = 0.0
    for p in problems:
        ids = tok(p["question"] + p["answer"] + "</s>")["input_ids"]
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], -1)
        prompt_len = len(tok(p["question"])["input_ids"])
        expected += sum(logp[t - 1, ids[t]].item() for t in range(prompt_len, len(ids)))
    assert reference_logprob(model, tok, load_task("toy"), problems) == pytest.approx(expected / 2, rel=1e-5)
