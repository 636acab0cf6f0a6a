"""The vLLM generation backend (GPU): the `Generator` interface of soar/generation.py on a vLLM engine.

The engine is a second copy of the policy, built lazily on the first `generate` from the model's
directory. Before every call it is brought up to date with the torch model being trained:

- Version bookkeeping: every in-place write to a parameter (an optimizer step, `load_state_dict`)
  bumps that tensor's `_version` counter, so `weights_version(model)` (their sum) changes exactly
  when the weights may have changed, and a forward pass under no_grad leaves it alone.
- Full fine-tuning: the new weights are copied into the engine's own parameters in place
  (`push_weights`, the one function that depends on vLLM's internals).
- A PEFT (LoRA) model: the adapter is saved to a temporary directory and requested under a new name
  and integer id per version; the engine holds the base weights from the model's directory.

Generators built from the same model directory share one engine (one copy of the weights and one
KV cache on the GPU, not one per role): the engine remembers whose weights it holds, and a generator
whose model is not the one loaded pushes its own weights first (the teacher, the baseline student and
the inner-loop student of one outer step take turns). With LoRA, the frozen base is pushed too when
it changed (a promoted adapter merged into θ).

The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), so pushing weights passes
tensors by reference, with no serialisation. Creating it seeds Python's, NumPy's and torch's global
generators with `ENGINE_SEED` (vLLM does so when it starts a worker).

Differences from `HFGenerator`: samples come from vLLM's sampler, so with the same seed the two
backends draw different (equally distributed) completions; a pad token the model chose stays in the
completion (HF drops pad tokens, because its batches are padded; vLLM's are not).

vLLM is imported inside functions only, so this module imports without it (CPU machines, tests).
Run on a GPU with vLLM 0.26.0 (`benchmarks/gpu_check.py`, figures in the README).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch

from soar.generation import GenerationConfig, Sample

ENGINE_SEED = 0
"""Seed of the engine's own generator (requests without a seed draw from it)."""


def sampling_kwargs(cfg: GenerationConfig, n: int, greedy: bool, temperature: float | None,
                    max_new_tokens: int | None, seed: int | None) -> dict:
    """Arguments of `vllm.SamplingParams` for one prompt: n samples at `temperature`, or one greedy one.

    Plain sampling as in HFGenerator: no top-k (vLLM's -1), no nucleus (top_p 1). Greedy is
    temperature 0 with n=1 (the caller replicates it) and needs no seed.
    """
    temperature = cfg.temperature if temperature is None else temperature
    max_new_tokens = cfg.max_new_tokens if max_new_tokens is None else max_new_tokens
    if greedy:
        return {"n": 1, "temperature": 0.0, "top_k": -1, "top_p": 1.0, "seed": None, "max_tokens": max_new_tokens}
    return {"n": n, "temperature": temperature, "top_k": -1, "top_p": 1.0, "seed": seed, "max_tokens": max_new_tokens}


def request_seed(seed: int | None, index: int) -> int | None:
    """The seed of the index-th prompt of a call seeded with `seed`.

    Each prompt needs its own: vLLM seeds a generator per request, so a prompt that appears twice in
    one call (problems drawn with replacement) would otherwise get the same samples twice. Hashing
    (not seed + index) keeps calls with nearby seeds from sharing requests' seeds.
    """
    return None if seed is None else random.Random(f"{seed}/{index}").randrange(2**31)


def weights_version(model) -> int:
    """A number that changes whenever a parameter of `model` is written in place (summed `_version`)."""
    return sum(p._version for p in model.parameters())


def base_version(model) -> int:
    """Like weights_version, over the frozen weights only (a LoRA model's base)."""
    return sum(p._version for p in model.parameters() if not p.requires_grad)


def needs_push(held: tuple | None, owner: int, version: int) -> bool:
    """Whether an engine holding `held` = (owner id, version) must be sent `owner`'s weights at `version`."""
    return held != (owner, version)


_LORA_IDS = itertools.count(1)
"""Integer ids of LoRA requests, unique in this process."""

_ENGINES: dict[str, dict] = {}
"""Shared engines by model directory: {"llm": vllm.LLM, "held": (id(model), version) of the weights in it}."""


def release_engines() -> None:
    """Shut down every shared engine and free its GPU memory (a later generate starts a new one)."""
    if not _ENGINES:
        return
    import gc

    from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

    for shared in _ENGINES.values():
        shared["llm"].llm_engine.engine_core.shutdown()
    _ENGINES.clear()
    gc.collect()
    cleanup_dist_env_and_memory()  # vLLM's own teardown: its process group, then torch.cuda.empty_cache
    torch.cuda.empty_cache()


def adapter_name(model, version: int) -> str:
    """The name of `model`'s LoRA adapter at weights version `version`, unique per model and version."""
    return f"soar-{id(model)}-v{version}"


def to_samples(prompt_ids: list[list[int]], outputs: list[list], tokenizer, eos_id: int, reps: int, n: int,
               greedy: bool) -> list[list[Sample]]:
    """vLLM completions (per prompt, `reps` objects with `.token_ids`) -> Samples grouped by prompt.

    As in HFGenerator: the completion keeps the eos when the model stopped (it chose to stop), the text
    is decoded without special tokens, and a greedy completion is repeated n times.
    """
    groups = []
    for ids, completions in zip(prompt_ids, outputs, strict=True):
        if len(completions) != reps:
            raise ValueError(f"expected {reps} completions per prompt, got {len(completions)}")
        group = []
        for out in completions:
            completion = list(out.token_ids)
            if eos_id in completion:
                completion = completion[:completion.index(eos_id) + 1]
            group.append(Sample(list(ids), completion, tokenizer.decode(completion, skip_special_tokens=True)))
        groups.append(group * n if greedy else group)
    return groups


def push_weights(llm, weights: list[tuple[str, torch.Tensor]]) -> None:
    """Copy full (HF-named) weights into the engine's parameters in place.

    The version-specific bit: the worker's `model_runner.get_model().load_weights`, as in vLLM's RLHF examples
    (examples/offline_inference/rlhf_utils.py), called through `LLM.collective_rpc` with a function
    that receives the worker. The engine is in this process, so `weights` travel by reference.
    `load_weights` maps HF names onto vLLM's fused layers (qkv, gate_up) and casts to the engine dtype.
    Cached prefixes were computed with the old weights, so the prefix cache is dropped.
    """
    def load(worker):
        with torch.inference_mode():  # the engine's parameters may be inference tensors
            worker.model_runner.get_model().load_weights(weights=weights)  # unwrapped from CUDA graphs

    llm.collective_rpc(load)
    llm.reset_prefix_cache()


def base_named_parameters(model):
    """A PEFT model's frozen base weights, named as in the plain model (for the engine's load_weights)."""
    for name, p in model.get_base_model().named_parameters():
        if "lora_" not in name:
            yield name.replace(".base_layer.", "."), p


def require_vllm() -> None:
    """Fail with the install command when vLLM is missing."""
    if importlib.util.find_spec("vllm") is None:
        raise ImportError("the vllm generation backend needs vLLM on a CUDA machine: pip install 'soar-rl[gpu]'")


class VLLMGenerator:
    """`generate` on a vLLM engine that follows `model`'s weights (see the module docstring).

    model: the torch model being trained (full, or a PEFT LoRA model); model_path: the directory or hub
    id it was loaded from (config, tokenizer and the base weights of a PEFT model).
    """

    def __init__(self, model, tokenizer, cfg: GenerationConfig, model_path: str):
        require_vllm()
        self.model, self.tokenizer, self.cfg, self.model_path = model, tokenizer, cfg, model_path
        self.is_lora = hasattr(model, "peft_config")  # PEFT models, whatever their class
        self.synced_version: int | None = None  # None: the engine has not seen `model` yet
        self.lora_request = None
        self.adapter_dir: Path | None = None
        self.tmp = tempfile.TemporaryDirectory(prefix="soar-lora-") if self.is_lora else None

    def engine(self):
        """The vLLM engine for model_path, created on first use and shared with other generators."""
        shared = _ENGINES.get(self.model_path)
        if shared is None:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine core in this process: see push_weights
            if importlib.util.find_spec("flashinfer") is None:  # vLLM's optional dependency; without it
                os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # its sampler would still import it
            from vllm import LLM

            lora = {}
            if self.cfg.max_lora_rank:
                lora = {"enable_lora": True, "max_loras": 1, "max_lora_rank": self.cfg.max_lora_rank}
            torch.cuda.empty_cache()  # vLLM sizes itself from the free memory, which torch's cached blocks hide
            llm = LLM(model=self.model_path, dtype=self.cfg.dtype, seed=ENGINE_SEED,
                      skip_tokenizer_init=True,  # prompts arrive as token ids; completions are decoded here
                      distributed_executor_backend="uni",  # and its one worker too
                      gpu_memory_utilization=self.cfg.gpu_memory_utilization, enable_sleep_mode=False,
                      enforce_eager=self.cfg.enforce_eager,
                      max_model_len=min(self.cfg.max_model_len, self.model.config.max_position_embeddings),
                      **lora)
            shared = _ENGINES[self.model_path] = {"llm": llm, "held": None}
        if self.is_lora:
            rank = max(c.r for c in self.model.peft_config.values())
            if rank > self.cfg.max_lora_rank:
                raise ValueError(f"a LoRA model of rank {rank} needs generation.max_lora_rank >= {rank} "
                                 f"(it is {self.cfg.max_lora_rank}) with the vllm backend")
        return shared["llm"]

    def sync_weights(self) -> bool:
        """Bring the shared engine up to date with `model` if it holds other weights; True if it had to."""
        llm = self.engine()
        shared = _ENGINES[self.model_path]
        if self.is_lora:
            version = base_version(self.model)
            if needs_push(shared["held"], id(self.model), version):  # the base: θ, or another model's
                push_weights(llm, [(name, p.detach()) for name, p in base_named_parameters(self.model)])
                shared["held"] = (id(self.model), version)
            adapter = weights_version(self.model)
            if adapter == self.synced_version:
                return False
            from vllm.lora.request import LoRARequest

            previous, self.adapter_dir = self.adapter_dir, Path(self.tmp.name) / f"v{adapter}"
            self.model.save_pretrained(self.adapter_dir)
            self.lora_request = LoRARequest(lora_name=adapter_name(self.model, adapter),
                                            lora_int_id=next(_LORA_IDS),  # a new id: vLLM caches adapters by id
                                            lora_path=str(self.adapter_dir))
            if previous is not None:  # no request names the old adapter again
                shutil.rmtree(previous)
            self.synced_version = adapter
            return True
        version = weights_version(self.model)
        if not needs_push(shared["held"], id(self.model), version):
            return False
        push_weights(llm, [(name, p.detach()) for name, p in self.model.named_parameters()])
        shared["held"] = (id(self.model), version)
        self.synced_version = version
        return True

    def generate(self, prompts, n=1, *, greedy=False, temperature=None, max_new_tokens=None, seed=None):
        from vllm import SamplingParams

        self.sync_weights()
        eos = self.tokenizer.eos_token_id
        prompt_ids = [self.tokenizer(p)["input_ids"] for p in prompts]  # the HF tokenizer, as HFGenerator
        params = [SamplingParams(**sampling_kwargs(self.cfg, n, greedy, temperature, max_new_tokens,
                                                   request_seed(seed, i)),
                                 stop_token_ids=[eos], detokenize=False)  # texts are decoded in to_samples
                  for i in range(len(prompts))]
        results = self.engine().generate([{"prompt_token_ids": ids} for ids in prompt_ids], params,
                                         lora_request=self.lora_request, use_tqdm=False)
        reps = 1 if greedy else n
        return to_samples(prompt_ids, [r.outputs for r in results], self.tokenizer, eos, reps, n, greedy)
