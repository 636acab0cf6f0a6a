"""The fail@k hard set: problems the base model never solves in k samples, split 50/50 into D_train / D_test."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from soar.evaluation import count_correct
from soar.generation import Generator
from soar.progress import log, track
from soar.tasks import Task, configured_task


@dataclass
class FilterConfig:
    """`soar filter`: build the fail@k hard set of a problem file with a model (SOAR_SPEC §2)."""

    model: str
    """Model directory or hub id (the base model π_base)."""
    problems: str
    """Candidate problems: a file, or a `datasets` hub id with --format math/harp/olympiadbench
    (toy world: hard_candidates.jsonl)."""
    out: str
    """Directory for train.jsonl, test.jsonl and manifest.json."""
    task: str = "toy"
    """Task of the problems: "toy" or "math"."""
    format: str = "problems"
    """How to read `problems`: "problems" (JSONL with question and answer), "math", "harp" or
    "olympiadbench" (the benchmark's own fields, from a JSONL/JSON/Parquet file or a hub id)."""
    limit: int | None = None
    """Use only the first `limit` problems."""
    split: str | None = None
    """Split to read from a hub dataset (default: the loader's own)."""
    k: int = 128
    """Samples per problem; a problem is hard when all k fail."""
    temperature: float = 1.0
    """Sampling temperature of the k samples."""
    max_new_tokens: int = 8
    """Longest completion (paper: 1024; the toy answers need 6 tokens)."""
    seed: int = 0
    """Seed of the sampling and of the 50/50 split."""
    chunk: int = 64
    """Problems sampled per progress update."""
    chat_template: bool = False
    """Wrap the student prompt in the model's chat template (instruct models; math task)."""
    backend: str = "hf"
    """Generation backend: "hf" or "vllm" (GPU)."""
    device: str = "auto"
    """Where the model runs: "auto" (CUDA when available), "cpu" or "cuda"."""


def find_hard(generator: Generator, task: Task, problems: list[dict], k: int, seed: int,
              temperature: float = 1.0, chunk: int = 64) -> tuple[list[dict], list[int]]:
    """The problems with 0 of k samples correct, and the number correct for every problem."""
    counts: list[int] = []
    starts = range(0, len(problems), chunk)
    for i, start in enumerate(track(starts, f"fail@{k} filter")):
        counts += count_correct(generator, task, problems[start:start + chunk], k, seed=seed + i, temperature=temperature)
    return [p for p, c in zip(problems, counts) if c == 0], counts


def split_train_test(problems: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded random 50/50 split (D_train gets the extra problem when the count is odd)."""
    shuffled = list(problems)
    random.Random(seed).shuffle(shuffled)
    half = (len(shuffled) + 1) // 2
    return shuffled[:half], shuffled[half:]


def load_candidates(cfg: FilterConfig, log=log) -> list[dict]:
    """The candidate problems of `soar filter`, read as cfg.format says; skipped rows are reported."""
    from soar.runs import read_problems

    if cfg.format == "problems":
        problems = read_problems(cfg.problems)
    elif cfg.format in ("math", "harp", "olympiadbench"):
        from soar.tasks import math as math_task
        loader = {"math": math_task.load_math, "harp": math_task.load_harp,
                  "olympiadbench": math_task.load_olympiadbench}[cfg.format]
        problems, skipped = loader(cfg.problems, **({"split": cfg.split} if cfg.split else {}))
        log(f"{cfg.problems}: {len(problems)} problems, {skipped} rows skipped (no usable answer)")
    else:
        raise ValueError(f"unknown --format {cfg.format!r}: expected problems, math, harp or olympiadbench")
    return problems[:cfg.limit] if cfg.limit else problems


def source_hash(source: str, problems: list[dict]) -> str:
    """sha256 of the source file, or of the loaded problems when the source is a hub id."""
    import hashlib
    import json

    from soar.runs import file_sha256

    if Path(source).is_file():
        return file_sha256(source)
    return hashlib.sha256(json.dumps(problems, sort_keys=True).encode()).hexdigest()


def run_filter(cfg: FilterConfig, log=log) -> dict:
    """Build the hard set and write train.jsonl, test.jsonl and manifest.json into cfg.out."""
    from soar.generation import GenerationConfig, make_generator
    from soar.models import load_model, load_tokenizer, resolve_device
    from soar.runs import write_json, write_jsonl

    problems = load_candidates(cfg, log)
    tokenizer = load_tokenizer(cfg.model)
    generator = make_generator(load_model(cfg.model, resolve_device(cfg.device)), tokenizer,
                               GenerationConfig(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                                                backend=cfg.backend), cfg.model)
    task = configured_task(cfg, tokenizer)
    hard, counts = find_hard(generator, task, problems, cfg.k, cfg.seed, cfg.temperature, cfg.chunk)
    train, test = split_train_test(hard, cfg.seed)
    out = Path(cfg.out)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    manifest = {"model": cfg.model, "task": cfg.task, "chat_template": cfg.chat_template, "k": cfg.k, "temperature": cfg.temperature,
                "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed, "source": str(cfg.problems),
                "format": cfg.format, "source_sha256": source_hash(cfg.problems, problems),
                "candidates": len(problems), "hard": len(hard),
                "train": len(train), "test": len(test),
                "solved_at_least_once": sum(c > 0 for c in counts)}
    write_json(out / "manifest.json", manifest)
    log(f"fail@{cfg.k}: {len(hard)} of {len(problems)} problems never solved -> "
        f"{len(train)} train / {len(test)} test in {out}")
    return manifest
