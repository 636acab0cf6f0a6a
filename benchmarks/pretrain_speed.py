"""Toy-world pretraining speed by torch thread count: prints the median seconds per step.

    python benchmarks/pretrain_speed.py [--steps 40] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from soar.tasks import toy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    cfg = toy.ToyConfig()
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        rng = random.Random(0)
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(toy.VOCAB), hidden_size=cfg.hidden_size, intermediate_size=4 * cfg.hidden_size,
            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
            max_position_embeddings=64, tie_word_embeddings=True))
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            ids, labels = toy.corpus_batch(rng, cfg)
            loss = model(input_ids=ids, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        warm = times[5:]
        print(f"{threads} thread(s): median {statistics.median(warm):.4f} s/step over {len(warm)} steps "
              f"(batch {cfg.batch_size})")


if __name__ == "__main__":
    main()
