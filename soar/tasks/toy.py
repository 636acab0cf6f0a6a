"""The toy world: SOAR on a laptop, with a real fail@128 plateau.

A tiny Llama is pretrained from scratch on fixed-width addition (`0471+3852=04323`). Its *student*
lines come from a noisy adder that keeps each carry only with probability `student_carry_keep`
(q_S, ~1%), so the model adds carry-free numbers perfectly, solves 1-carry problems a few percent of
the time, and never solves problems with 3 carries: that is the plateau. Correct 1- and 2-carry
problems are the stepping stones: RL on them raises the latent carry probability, which lifts the
hard set. Every hard problem also has a column that does *not* carry, so "carry everywhere" fails.

*Teacher* lines (`<teach>0471+3852=04323`) teach the model to pose problems. They are skewed toward
carry-free problems and use a sloppier adder (q_T = 0.7), so that about a tenth of what the
untrained teacher writes are useful stepping stones (correct, with 1-2 carries): the teacher has to
learn to write more of them (TOY_WORLD.md, items 4-5).

The model and tokenizer are saved in Hugging Face format and loaded from a path like any hub model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from soar.progress import log
from soar.tasks import Task

TEACH = "<teach>"
SPECIAL = ["<pad>", "<s>", "</s>", TEACH]
VOCAB = SPECIAL + list("0123456789+=")


@dataclass
class ToyConfig:
    """The toy world: arithmetic, corpus mix and the tiny model's pretraining."""

    seed: int = 0
    """Seed of the corpus, the model initialisation and the problem files."""
    digits: int = 4
    """Width of each operand; answers have digits + 1 characters (zero-padded)."""
    student_carry_keep: float = 0.01
    """q_S: probability that the student-format adder keeps a carry. Sets the plateau's depth."""
    teacher_carry_keep: float = 0.7
    """q_T: probability that the teacher-format adder keeps a carry (teacher answers are unreliable).
    The earlier default world had 0.4 (with the mix 0.6 0.16 0.12 0.08 0.04 and 1,200 pretraining steps):
    there the grounded reward taught the teacher little and PQ stayed near 0 (README)."""
    teacher_carry_mix: tuple[float, ...] = (0.8, 0.08, 0.06, 0.04, 0.02)
    """Share of teacher-format problems with 0, 1, 2, ... carries (skewed to useless carry-free ones)."""
    teacher_share: float = 0.3
    """Fraction of pretraining lines in the teacher format."""
    hard_carries: int = 3
    """Hard problems have exactly this many carries, the top column's among them, so that a lower
    column does not carry: neither "carry everywhere" nor "carry into every digit" solves them."""
    curriculum_carries: tuple[int, ...] = (0, 1, 2)
    """Carry counts in the oracle curriculum (correct answers). The 1-2 carry problems are the stepping
    stones; the carry-free ones keep the student from learning to carry everywhere (retention)."""
    num_hard_candidates: int = 512
    """Candidate hard problems written for `soar filter`."""
    num_easy: int = 128
    """Carry-free problems for measuring retention."""
    num_curriculum: int = 256
    """Problems in the oracle curriculum."""
    hidden_size: int = 128
    """Width of the tiny Llama."""
    num_layers: int = 2
    """Transformer layers (2 learn 4-digit addition in ~600 steps; 3 took longer at this budget)."""
    num_heads: int = 4
    """Attention heads."""
    pretrain_steps: int = 4000
    """Pretraining steps (AdamW, cosine). Carry-free student lines are learned by ~900, the teacher lines
    later and less surely: after 1,200 steps the teacher's carry mix and answers are far from their corpus
    and differ from seed to seed; after 4,000 this world's teacher writes as its corpus does for three seeds
    of three. The q_T = 0.4 world needed teacher_share 0.5 as well (`benchmarks/pretrain_fidelity.py`)."""
    batch_size: int = 128
    """Lines per pretraining step."""
    lr: float = 2e-3
    """Peak pretraining learning rate."""
    warmup_steps: int = 100
    """Linear warmup steps of pretraining."""

    def __post_init__(self):
        if not 0 < self.hard_carries < self.digits:
            raise ValueError(f"hard_carries must be in 1..digits-1 (a hard problem needs a column without a carry), "
                             f"got {self.hard_carries} with digits={self.digits}")
        if len(self.teacher_carry_mix) > self.digits + 1 or max(self.curriculum_carries) > self.digits:
            raise ValueError(f"carry counts above digits={self.digits} are impossible")
        if not (0 <= self.student_carry_keep <= 1 and 0 <= self.teacher_carry_keep <= 1):
            raise ValueError("carry-keep probabilities must lie in [0, 1]")

    def fingerprint(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


# ---------------------------------------------------------------- arithmetic and ground truth

def carry_columns(a: int, b: int, digits: int) -> list[bool]:
    """Which columns (least significant first) produce a carry in the exact sum a + b."""
    out, carry = [], 0
    for i in range(digits):
        s = (a // 10**i) % 10 + (b // 10**i) % 10 + carry
        carry = int(s >= 10)
        out.append(bool(carry))
    return out


def noisy_sum(a: int, b: int, digits: int, keep: float, rng: random.Random) -> str:
    """a + b written with digits + 1 characters by an adder that keeps each carry with prob `keep`."""
    total, carry = 0, 0
    for i in range(digits):
        s = (a // 10**i) % 10 + (b // 10**i) % 10 + carry
        total += (s % 10) * 10**i
        carry = int(s >= 10 and rng.random() < keep)
    total += carry * 10**digits
    return str(total).zfill(digits + 1)


def format_question(a: int, b: int, digits: int) -> str:
    return f"{a:0{digits}d}+{b:0{digits}d}="


def parse_question(question: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)\+(\d+)=", question)
    if m is None:
        raise ValueError(f"not a toy question: {question!r}")
    return int(m.group(1)), int(m.group(2))


def sample_operands(rng: random.Random, digits: int, num_carries: int) -> tuple[int, int]:
    """Uniform operands conditioned on exactly `num_carries` carries (rejection sampling)."""
    while True:
        a, b = rng.randrange(10**digits), rng.randrange(10**digits)
        if sum(carry_columns(a, b, digits)) == num_carries:
            return a, b


def is_hard(a: int, b: int, digits: int, hard_carries: int) -> bool:
    """Exactly `hard_carries` carries, including the top column's (so the gap is in a lower column)."""
    carries = carry_columns(a, b, digits)
    return sum(carries) == hard_carries and carries[-1]


def true_answer(question: str) -> str:
    """The correct sum of a toy question, zero-padded to the world's answer width."""
    a, b = parse_question(question)
    return str(a + b).zfill(len(question.split("+")[0]) + 1)


def problem_truth(question: str, answer: str) -> dict:
    """What the toy world knows about a (question, answer) pair: carries, whether the top column
    carries (the answer's leading 1, which every hard problem has), correctness, usefulness, and
    whether a wrong answer is above the sum (`too_high`: spurious carries; the noisy adders only drop them)."""
    a, b = parse_question(question)
    digits = len(question.split("+")[0])
    columns = carry_columns(a, b, digits)
    correct = answer == true_answer(question)
    too_high = not correct and answer.isdigit() and int(answer) > a + b
    return {"carries": sum(columns), "top_carry": columns[-1], "correct": correct,
            "stepping_stone": correct and 1 <= sum(columns) <= 2, "too_high": too_high}


# ---------------------------------------------------------------- tokenizer and corpus

def build_tokenizer():
    """A character-level `tokenizers` tokenizer wrapped for transformers (saved as tokenizer.json)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.add_special_tokens(SPECIAL)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<pad>", additional_special_tokens=[TEACH])


def student_line(rng: random.Random, cfg: ToyConfig) -> str:
    a, b = rng.randrange(10**cfg.digits), rng.randrange(10**cfg.digits)
    return format_question(a, b, cfg.digits) + noisy_sum(a, b, cfg.digits, cfg.student_carry_keep, rng)


def teacher_line(rng: random.Random, cfg: ToyConfig) -> str:
    num_carries = rng.choices(range(len(cfg.teacher_carry_mix)), weights=cfg.teacher_carry_mix)[0]
    a, b = sample_operands(rng, cfg.digits, num_carries)
    return TEACH + format_question(a, b, cfg.digits) + noisy_sum(a, b, cfg.digits, cfg.teacher_carry_keep, rng)


def teacher_corpus_figures(cfg: ToyConfig) -> dict[str, float]:
    """What the teacher-format lines hold, in expectation (fractions): problems by carry count
    (`carries=c`, the mix), correct answers overall and by carry count (`correct|c` = q_T ** c: a wrong
    answer is a dropped carry), and useful stepping stones (correct, 1-2 carries). A faithful
    pretraining leaves the untrained teacher writing close to these (`benchmarks/pretrain_fidelity.py`)."""
    total = sum(cfg.teacher_carry_mix)
    mix = [p / total for p in cfg.teacher_carry_mix]
    q = cfg.teacher_carry_keep
    return {**{f"carries={c}": p for c, p in enumerate(mix)},
            "correct": sum(p * q**c for c, p in enumerate(mix)),
            "stones": sum(p * q**c for c, p in enumerate(mix) if 1 <= c <= 2),
            **{f"correct|{c}": q**c for c in range(len(mix))}}


def corpus_batch(rng: random.Random, cfg: ToyConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A pretraining batch: input ids (B, T) and labels (B, T).

    Student lines are trained on their answers only (nobody asks the model to invent student
    questions); teacher lines on everything after `<teach>`, so the teacher learns the problem mix.
    """
    ids_of = {tok: i for i, tok in enumerate(VOCAB)}
    T = 2 * cfg.digits + 2 + cfg.digits + 1 + 3  # <s> [<teach>] a + b = answer </s>
    ids = torch.full((cfg.batch_size, T), ids_of["<pad>"], dtype=torch.long)
    labels = torch.full((cfg.batch_size, T), -100, dtype=torch.long)
    for row in range(cfg.batch_size):
        teacher = rng.random() < cfg.teacher_share
        line = teacher_line(rng, cfg) if teacher else student_line(rng, cfg)
        toks = ["<s>"] + ([TEACH] + list(line[len(TEACH):]) if teacher else list(line)) + ["</s>"]
        seq = torch.tensor([ids_of[t] for t in toks])
        ids[row, :len(seq)] = seq
        first = 2 if teacher else 2 * cfg.digits + 2  # first labelled token: operands or answer
        labels[row, first:len(seq)] = seq[first:]
    return ids, labels


# ---------------------------------------------------------------- pretraining and the build

SHIPPED_WEIGHTS = Path(__file__).parent / "toy_weights"
"""Pretrained weights that ship with the package, one file per world (`toy-<fingerprint>.safetensors`):
the default world's and the earlier default world's (teacher_carry_keep 0.4, teacher_carry_mix 0.6
0.16 0.12 0.08 0.04, pretrain_steps 1200), pretrained by `pretrain` on a 2-core AMD EPYC (torch's AVX2
kernels)."""


def new_model(cfg: ToyConfig, tokenizer):
    """The tiny Llama of `cfg`, randomly initialised from cfg.seed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(VOCAB), hidden_size=cfg.hidden_size, intermediate_size=4 * cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=64, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))


def shipped_model(cfg: ToyConfig, path: Path):
    """The model of `cfg` with the shipped weights at `path` (no training). Returns (model, tokenizer)."""
    from safetensors.torch import load_file

    tokenizer = build_tokenizer()
    model = new_model(cfg, tokenizer)
    missing, unexpected = model.load_state_dict(load_file(path), strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:  # the head is tied to the embeddings
        raise ValueError(f"{path} does not fit the toy world's model: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.eval()
    return model, tokenizer


def pretrain(cfg: ToyConfig, log=log):
    """Pretrain the tiny Llama from scratch; deterministic given cfg.seed on one machine (another CPU's
    matmul kernels can round differently and end elsewhere). Returns (model, tokenizer)."""
    from transformers import get_cosine_schedule_with_warmup

    rng = random.Random(cfg.seed)
    tokenizer = build_tokenizer()
    model = new_model(cfg, tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup_steps, cfg.pretrain_steps)
    model.train()
    t0 = time.time()
    for step in range(cfg.pretrain_steps):
        ids, labels = corpus_batch(rng, cfg)  # right-padded; padding is never attended by earlier tokens
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 250 == 0 or step == cfg.pretrain_steps - 1:
            log(f"pretrain step {step:5d}  loss {loss.item():.4f}  {time.time() - t0:6.1f}s")
    model.eval()
    return model, tokenizer


def problem_files(cfg: ToyConfig) -> dict[str, list[dict]]:
    """The toy world's problem sets: hard candidates, easy (carry-free) problems, the oracle curriculum."""
    rng = random.Random(cfg.seed + 1)
    seen: set[str] = set()

    def draw(name: str, count: int, accept) -> list[dict]:
        rows = []
        while len(rows) < count:
            a, b = rng.randrange(10**cfg.digits), rng.randrange(10**cfg.digits)
            q = format_question(a, b, cfg.digits)
            if accept(a, b) and q not in seen:
                seen.add(q)
                rows.append({"id": f"{name}-{len(rows):05d}", "question": q, "answer": str(a + b).zfill(cfg.digits + 1)})
        return rows

    def carries(a: int, b: int) -> int:
        return sum(carry_columns(a, b, cfg.digits))

    return {"hard_candidates": draw("hard", cfg.num_hard_candidates, lambda a, b: is_hard(a, b, cfg.digits, cfg.hard_carries)),
            "easy": draw("easy", cfg.num_easy, lambda a, b: carries(a, b) == 0),
            "oracle_curriculum": draw("curriculum", cfg.num_curriculum, lambda a, b: carries(a, b) in cfg.curriculum_carries)}


def default_dir(cfg: ToyConfig) -> Path:
    import os
    root = Path(os.environ.get("SOAR_CACHE", Path.home() / ".cache" / "soar"))
    return root / f"toy-{cfg.fingerprint()}"


def build(cfg: ToyConfig, out_dir: str | Path | None = None, force: bool = False, log=log,
          pretrain_weights: bool = False) -> Path:
    """Build (or reuse) the toy world in `out_dir`: HF model + tokenizer and the problem files.

    A world whose weights ship with the package (the default one, the earlier 1,200-step q_T = 0.4 one)
    takes them, so every machine gets the same model; others, or `pretrain_weights=True`, pretrain from
    cfg.seed (about 11 minutes on one core at 4,000 steps). A cached build whose weights are not the shipped
    ones is kept, with a note."""
    from soar.runs import write_json, write_jsonl

    out = Path(out_dir) if out_dir else default_dir(cfg)
    shipped = SHIPPED_WEIGHTS / f"toy-{cfg.fingerprint()}.safetensors"
    if (out / "toy_world.json").exists() and not force:
        log(f"toy world cached at {out}")
        if shipped.exists() and weights_sha256(out) != weights_sha256(shipped):
            log("  its weights are not the shipped ones (pretrained): figures measured on the shipped model will "
                "differ (`soar toy build --force` takes the shipped weights)")
        return out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    use_shipped = shipped.exists() and not pretrain_weights
    model, tokenizer = shipped_model(cfg, shipped) if use_shipped else pretrain(cfg, log)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for name, rows in problem_files(cfg).items():
        write_jsonl(out / f"{name}.jsonl", rows)
    seconds = time.time() - t0
    digest = weights_sha256(out)
    write_json(out / "toy_world.json", {"config": dataclasses.asdict(cfg), "build_seconds": round(seconds, 1),
                                        "weights": "shipped" if use_shipped else "pretrained", "weights_sha256": digest,
                                        **({} if use_shipped else {"cpu_capability": torch.backends.cpu.get_cpu_capability()})})
    log(f"toy world built in {seconds:.1f}s at {out} ({'shipped' if use_shipped else 'pretrained'} weights, "
        f"sha256 {digest[:12]})")
    return out


def weights_sha256(path: str | Path) -> str:
    """sha256 of a toy model's weights: a built world's directory, or a weights file. One machine pretrains the same model from a seed whatever its
    thread count, but CPUs whose matmul kernels differ (AVX2, AVX-512) can pretrain different ones, and
    every figure measured downstream differs with it: reports quote this to say which model they used."""
    path = Path(path)
    return hashlib.sha256((path / "model.safetensors" if path.is_dir() else path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- the task

def parse_teacher_output(text: str) -> tuple[str, str] | str:
    """A teacher line `0471+3852=04323` -> (question, answer); anything else is rejected."""
    m = re.fullmatch(r"\s*(\d+\+\d+=)(\d+)\s*", text)
    if m is None:
        return "malformed"
    a, b = m.group(1)[:-1].split("+")
    if len(a) != len(b) or len(m.group(2)) != len(a) + 1:
        return "wrong_width"
    return m.group(1), m.group(2)


def grade(completions: list[str], answers: list[str]) -> list[bool]:
    return [c.strip() == a.strip() for c, a in zip(completions, answers, strict=True)]


def make_task() -> Task:
    from soar.diagnostics import toy_truth_stats

    return Task(name="toy", teacher_prompt=TEACH, student_prompt=lambda q: q,
                parse_teacher_output=parse_teacher_output, grade=grade, truth=toy_truth_stats)
