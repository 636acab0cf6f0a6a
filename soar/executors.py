"""Where the inner loops run: in the driver process ("local") or as Ray actors ("ray").

One outer step runs g·r inner loops (SOAR_SPEC §5, step 3): copy the baseline student θ, train K RLOO
steps on X_k, measure Acc on Q_R. They are independent, and each is seeded from (run seed, t, k, j),
so any executor gives the same numbers. Both executors have the same three methods:

    run(jobs)            -> Acc of every trained student, in the order of `jobs`
    trained_weights(k, j) -> the full weights of student (k, j) of the last `run` (for a promotion)
    set_baseline(weights) -> make `weights` the θ every later inner loop starts from

The teacher update and the promotion decision stay in the driver (soar/loop.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from soar.evaluation import reward_accuracy
from soar.generation import make_generator
from soar.lora import add_adapter, is_lora, load_base_weights, load_trainable, merged_weights, trainable_state
from soar.models import frozen_copy, load_model, load_tokenizer
from soar.student import train_student
from soar.tasks import configured_task


@dataclass
class InnerLoop:
    """One inner loop: train a copy of θ on X_k, then measure Acc on Q_R."""

    k: int
    j: int
    seed: int
    """Seed of this loop's batches and samples, from (run seed, t, k, j)."""
    dataset: list[dict]
    """X_k: the teacher's (question, answer) pairs."""
    steps: int
    """K: RLOO steps."""
    reward_questions: list[dict]
    """Q_R."""
    acc_seed: int
    """Sampling seed of the Acc measurement (the same for the baseline and every student of a step)."""


class InnerLoopWorker:
    """Holds a student model, the KL reference and θ; runs inner loops one after another.

    Full fine-tuning keeps θ as a CPU copy of the weights and restores it before each loop. With
    LoRA (cfg.student_lora.rank > 0), θ is the frozen base and each loop starts from a fresh adapter:
    a reset copies the adapter's initial values only.
    """

    def __init__(self, cfg, reference=None, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.cfg = cfg
        self.tokenizer = load_tokenizer(cfg.model)
        self.task = configured_task(cfg, self.tokenizer)
        student = load_model(cfg.model, cfg.device, cfg.dtype)
        self.reference = reference if reference is not None else frozen_copy(student)
        if cfg.student_lora.rank:
            student = add_adapter(student, cfg.student_lora, seed=cfg.seed)
        else:
            student.requires_grad_(True)
        self.student = student
        self.start = trainable_state(student)  # θ (full fine-tuning) or the fresh adapter (LoRA)
        self.generator = make_generator(student, self.tokenizer, cfg.generation, cfg.model)
        self.trained: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

    def run(self, loop: InnerLoop, keep: bool = True) -> float:
        load_trainable(self.student, self.start)
        train_student(self.student, self.reference, self.generator, self.task, loop.dataset, loop.steps,
                      self.cfg.student, loop.seed, self.tokenizer.pad_token_id)
        acc = reward_accuracy(self.generator, self.task, loop.reward_questions, self.cfg.reward_metric,
                              self.cfg.reward_samples, loop.acc_seed)
        if keep:
            self.trained[(loop.k, loop.j)] = trainable_state(self.student)
        return acc

    def run_many(self, loops: list[InnerLoop]) -> list[float]:
        self.trained.clear()
        return [self.run(loop) for loop in loops]

    def drop(self, keys) -> None:
        for key in keys:
            self.trained.pop(key, None)

    def trained_weights(self, k: int, j: int) -> dict[str, torch.Tensor]:
        if (k, j) not in self.trained:
            raise KeyError(f"student ({k}, {j}) was not kept by this worker")
        if is_lora(self.student):
            return merged_weights(self.student, self.trained[(k, j)])
        return self.trained[(k, j)]

    def set_baseline(self, weights: dict[str, torch.Tensor]) -> None:
        if is_lora(self.student):
            load_base_weights(self.student, weights)
        else:
            self.start = {name: weights[name].detach().to("cpu", copy=True) for name in self.start}


class LocalExecutor:
    """Inner loops one after another in this process, on one preallocated student model.

    Only the r students of the leading dataset (highest Σ_j Acc so far, first on ties: the argmax of
    the promotion rule) are kept, so memory holds r trained students, not g·r.
    """

    def __init__(self, cfg, reference=None):
        self.worker = InnerLoopWorker(cfg, reference)

    def run(self, loops: list[InnerLoop]) -> list[float]:
        self.worker.trained.clear()
        accs: list[float] = []
        totals: dict[int, float] = {}
        for i, loop in enumerate(loops):
            accs.append(self.worker.run(loop))
            totals[loop.k] = totals.get(loop.k, 0.0) + accs[-1]
            if i + 1 == len(loops) or loops[i + 1].k != loop.k:  # dataset k is complete
                leader = max(totals, key=lambda k: (totals[k], -k))
                self.worker.drop([key for key in self.worker.trained if key[0] != leader])
        return accs

    def trained_weights(self, k: int, j: int) -> dict[str, torch.Tensor]:
        return self.worker.trained_weights(k, j)

    def set_baseline(self, weights: dict[str, torch.Tensor]) -> None:
        self.worker.set_baseline(weights)

    def close(self) -> None:
        pass


class RayExecutor:
    """Inner loops spread over `num_workers` Ray actors, each with its own student model.

    Connects to the cluster at `address` (e.g. "auto" inside a `ray start` cluster), or starts a local
    one. Each actor asks for `worker_gpus` GPUs and `worker_cpus` CPUs (one GPU per student worker on
    a GPU cluster) and keeps the students it trained during the last `run` until the next one.
    """

    def __init__(self, cfg, num_workers: int, address: str | None = None, worker_cpus: float = 1,
                 worker_gpus: float = 0):
        try:
            import ray
        except ImportError as e:
            raise ImportError("executor='ray' needs Ray: pip install 'soar-rl[ray]'") from e
        self.ray = ray
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=True)
            else:
                ray.init(num_cpus=max(1, round(num_workers * worker_cpus)), include_dashboard=False,
                         log_to_driver=True)
        Worker = ray.remote(num_cpus=worker_cpus, num_gpus=worker_gpus)(InnerLoopWorker)
        threads = max(1, int(worker_cpus))
        self.workers = [Worker.remote(cfg, None, threads) for _ in range(num_workers)]
        self.owner: dict[tuple[int, int], object] = {}

    def run(self, loops: list[InnerLoop]) -> list[float]:
        shares = [loops[w::len(self.workers)] for w in range(len(self.workers))]  # round robin
        futures = [worker.run_many.remote(share) for worker, share in zip(self.workers, shares)]
        results = self.ray.get(futures)
        self.owner = {(loop.k, loop.j): worker for worker, share in zip(self.workers, shares) for loop in share}
        accs = {(loop.k, loop.j): acc for share, result in zip(shares, results) for loop, acc in zip(share, result)}
        return [accs[(loop.k, loop.j)] for loop in loops]

    def trained_weights(self, k: int, j: int) -> dict[str, torch.Tensor]:
        return self.ray.get(self.owner[(k, j)].trained_weights.remote(k, j))

    def set_baseline(self, weights: dict[str, torch.Tensor]) -> None:
        ref = self.ray.put(weights)
        self.ray.get([worker.set_baseline.remote(ref) for worker in self.workers])

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        self.workers = []


def make_executor(cfg, reference=None):
    """The executor named by cfg.executor: "local" (shares the driver's KL reference) or "ray"."""
    if cfg.executor == "local":
        return LocalExecutor(cfg, reference)
    if cfg.executor == "ray":
        return RayExecutor(cfg, cfg.num_workers, cfg.ray_address, cfg.worker_cpus, cfg.worker_gpus)
    raise ValueError(f"executor must be 'local' or 'ray', not {cfg.executor!r}")
