"""GPU check: SOAR's phases timed with the HF and vLLM generation backends on one GPU (a few minutes).

    python benchmarks/gpu_check.py [--shape toy|1b|3b] [--backends hf vllm] [--loop-steps 2]

Builds a random-weight Llama (the toy world's size, or Llama-3.2-1B / 3B dimensions) with the toy
world's character tokenizer, so nothing is downloaded, saves it to a temporary directory, and times
with each backend:
1. teacher generation   g·n = 4·64 samples of the teacher prompt
2. student rollouts     8 prompts x 16 samples
3. RLOO step            soar.rl.rloo_step on those rollouts (random rewards), KL to a frozen copy
4. weight sync          (vLLM) pushing the stepped weights into the engine
5. greedy evaluation    64 prompts

It prints seconds, completion tokens per second and the peak of torch.cuda.max_memory_allocated per
phase (the vLLM engine runs in this process, so its weights and KV cache count too). Random weights
seldom emit eos, so completions run to the token limit. The 1b and 3b shapes train with gradient
checkpointing and short student completions, so that one unbatched RLOO step fits next to the engine.

Then, with each backend, a short real SOAR run (`soar.loop.run`, the `soar train` defaults) on the
toy world, which is built first when it is not cached (a model with random weights writes no valid
teacher problems, so it cannot drive the loop). D_train is the toy world's first 128 hard candidates,
unfiltered: the run is timed, not judged. It prints each outer step's phases from metrics.jsonl, the
engine's weight pushes and the peak of GPU memory.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import tyro

import soar.vllm_generation
from soar.generation import GenerationConfig, make_generator
from soar.loop import SoarConfig, run
from soar.models import frozen_copy
from soar.rl import RLConfig, make_optimizer, rloo_step
from soar.runs import read_problems, write_jsonl
from soar.tasks import toy

LLAMA_3_2 = dict(vocab_size=128256, intermediate_size=8192, num_key_value_heads=8, rope_theta=500000.0,
                 max_position_embeddings=4096, tie_word_embeddings=True)
SHAPES = {  # LlamaConfig arguments, teacher and student completion lengths, gradient checkpointing
    "toy": (dict(vocab_size=len(toy.VOCAB), hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64, tie_word_embeddings=True),
            24, 8, False),
    "1b": (dict(LLAMA_3_2, hidden_size=2048, num_hidden_layers=16, num_attention_heads=32), 128, 64, True),
    "3b": (dict(LLAMA_3_2, hidden_size=3072, num_hidden_layers=28, num_attention_heads=24), 128, 64, True),
}


@dataclass
class Args:
    """Time SOAR's generation, training and weight-sync phases on one GPU."""

    shape: Literal["toy", "1b", "3b"] = "1b"
    """Model: the toy world's tiny Llama, or random weights with Llama-3.2-1B / 3B dimensions."""
    backends: tuple[Literal["hf", "vllm"], ...] = ("hf", "vllm")
    """Generation backends to time (vllm is left out, with a note, when it is not installed)."""
    teacher_tokens: int | None = None
    """Longest teacher completion (default: the shape's, see SHAPES)."""
    student_tokens: int | None = None
    """Longest student completion in rollouts and evaluation (default: the shape's)."""
    teacher_samples: int = 256
    """g·n: teacher samples per outer step (paper: 4 datasets of 64)."""
    gpu_memory_utilization: float = 0.25
    """Share of the GPU's memory the vLLM engine may take."""
    seed: int = 0
    """Seed of the weights, prompts, rewards and samples."""
    loop_steps: int = 2
    """Outer steps of the real SOAR run on the toy world per backend (0: skip it)."""
    enforce_eager: bool = False
    """vLLM: no torch.compile or CUDA graphs (a faster engine start, slower decoding)."""


def timed(fn):
    """(fn(), seconds, peak GiB allocated by torch during the call)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = fn()
    torch.cuda.synchronize()
    return result, time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**30


def completion_tokens(groups, greedy: bool = False) -> int:
    """Tokens the backend generated (a greedy group repeats one completion)."""
    return sum(len(g[0].completion_ids) if greedy else sum(len(s.completion_ids) for s in g) for g in groups)


def main() -> None:
    args = tyro.cli(Args, description=__doc__)
    if not torch.cuda.is_available():
        sys.exit(f"gpu_check needs a CUDA GPU, and torch.cuda.is_available() is False here "
                 f"(torch {torch.__version__}). Run it on a GPU machine: python benchmarks/gpu_check.py")
    from transformers.utils import logging

    logging.disable_progress_bar()

    has_vllm = importlib.util.find_spec("vllm") is not None
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  "
          f"vllm {importlib.metadata.version('vllm') if has_vllm else 'not installed'}")
    backends = [b for b in args.backends if b == "hf" or has_vllm]
    if len(backends) < len(args.backends):
        print("vllm is not installed (pip install 'soar-rl[gpu]'): timing the hf backend only")
    phase_check(backends, args)
    soar.vllm_generation.release_engines()  # the random-weight model's engine
    for backend in backends if args.loop_steps else []:
        loop_check(backend, args)


def phase_check(backends: list[str], args: Args) -> None:
    """Time each phase on a random-weight model of args.shape with every backend; prints a table."""
    from transformers import LlamaConfig, LlamaForCausalLM

    llama, teacher_tokens, student_tokens, checkpointing = SHAPES[args.shape]
    teacher_tokens = args.teacher_tokens or teacher_tokens
    student_tokens = args.student_tokens or student_tokens

    tokenizer = toy.build_tokenizer()  # ids past its 16 tokens decode to nothing, which is fine for timing
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**llama, bos_token_id=tokenizer.bos_token_id,
                                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    model.to(torch.bfloat16)
    if checkpointing:
        model.gradient_checkpointing_enable()
    ref = frozen_copy(model)
    rl_cfg = RLConfig()
    optimizer, scheduler = make_optimizer(model, rl_cfg, total_steps=10)
    print(f"shape {args.shape}: {sum(p.numel() for p in model.parameters()) / 1e6:,.1f}M parameters (bf16), "
          f"teacher {teacher_tokens} / student {student_tokens} new tokens, gradient checkpointing "
          f"{'on' if checkpointing else 'off'}; built in {time.perf_counter() - t0:.1f}s")

    rng = random.Random(args.seed)
    questions = [toy.format_question(rng.randrange(10**4), rng.randrange(10**4), 4) for _ in range(64)]
    rewards = torch.bernoulli(torch.full((8, 16), 0.5), generator=torch.Generator().manual_seed(args.seed))
    rows = []  # (phase, backend, seconds, tokens per second or None, peak GiB)

    with tempfile.TemporaryDirectory(prefix="soar-gpu-check-") as model_dir:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        for backend in backends:
            cfg = GenerationConfig(backend=backend, max_new_tokens=student_tokens, batch_size=256,
                                   gpu_memory_utilization=args.gpu_memory_utilization,
                                   enforce_eager=args.enforce_eager)
            gen = make_generator(model, tokenizer, cfg, model_dir)
            torch.cuda.empty_cache()
            if backend == "vllm":
                _, s, mem = timed(gen.sync_weights)
                rows.append(("engine start + first weight push", backend, s, None, mem))

            groups, s, mem = timed(lambda: gen.generate([toy.TEACH], args.teacher_samples,
                                                        max_new_tokens=teacher_tokens, seed=args.seed))
            rows.append((f"teacher generation ({args.teacher_samples} samples)", backend, s,
                         completion_tokens(groups) / s, mem))

            rollouts, s, mem = timed(lambda: gen.generate(questions[:8], 16, seed=args.seed + 1))
            rows.append(("student rollouts (8 x 16)", backend, s, completion_tokens(rollouts) / s, mem))

            stats, s, mem = timed(lambda: rloo_step(model, ref, optimizer, scheduler, rollouts, rewards, rl_cfg,
                                                    tokenizer.pad_token_id))
            rows.append((f"RLOO step (loss {stats['loss']:+.3f})", backend, s, None, mem))

            if backend == "vllm":
                synced, s, mem = timed(gen.sync_weights)
                assert synced, "the RLOO step changed the weights, so the engine must have been updated"
                rows.append(("weight sync after the step", backend, s, None, mem))

            evals, s, mem = timed(lambda: gen.generate(questions, 1, greedy=True))
            rows.append(("greedy evaluation (64 prompts)", backend, s, completion_tokens(evals, greedy=True) / s, mem))

    print(f"\n{'phase':<40} {'backend':<8} {'seconds':>8} {'tokens/s':>10} {'peak GiB':>9}")
    for phase, backend, s, tps, mem in rows:
        print(f"{phase:<40} {backend:<8} {s:8.2f} {'' if tps is None else f'{tps:10.0f}':>10} {mem:9.2f}")


def loop_check(backend: str, args: Args) -> None:
    """A short SOAR run on the toy world with `backend`; prints its outer steps' phase times."""
    pushes = []  # seconds of each weight push into the engine
    push = soar.vllm_generation.push_weights

    def timed_push(llm, weights):
        _, s, _ = timed(lambda: push(llm, weights))
        pushes.append(s)

    toy_dir = toy.build(toy.ToyConfig())
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    soar.vllm_generation.push_weights = timed_push
    try:
        with tempfile.TemporaryDirectory(prefix="soar-gpu-loop-") as tmp:
            write_jsonl(Path(tmp) / "hard" / "train.jsonl", read_problems(toy_dir / "hard_candidates.jsonl")[:128])
            cfg = SoarConfig(model=str(toy_dir), hard_set=str(Path(tmp) / "hard"), out=str(Path(tmp) / "run"),
                             outer_steps=args.loop_steps, seed=args.seed, device="cuda")
            cfg.generation = dataclasses.replace(cfg.generation, backend=backend, enforce_eager=args.enforce_eager,
                                                 gpu_memory_utilization=args.gpu_memory_utilization)
            t0 = time.perf_counter()
            run(cfg)
            seconds = time.perf_counter() - t0
            steps = [json.loads(line) for line in open(Path(tmp) / "run" / "metrics.jsonl")]
    finally:
        soar.vllm_generation.push_weights = push
        soar.vllm_generation.release_engines()
    phases = list(steps[0]["time"])
    print(f"\nSOAR on the toy world, {backend} backend (g={cfg.group_size} n={cfg.dataset_size} "
          f"r={cfg.num_repeats} K={cfg.inner_steps} M={cfg.num_reward_questions}): {seconds:.1f}s for "
          f"{len(steps)} outer steps, engine start included; peak GPU memory "
          f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(f"{'step':<6}" + "".join(f"{p:>20}" for p in phases) + f"{'total':>10}")
    for m in steps:
        print(f"{m['step']:<6}" + "".join(f"{m['time'][p]:20.2f}" for p in phases) + f"{sum(m['time'].values()):10.2f}")
    if backend == "vllm":
        print(f"weight pushes into the engine: {len(pushes)}, {sum(pushes):.2f}s in all "
              f"(median {statistics.median(pushes) if pushes else 0:.3f}s)")


if __name__ == "__main__":
    main()
