"""`soar filter` on a real maths benchmark file with a tiny random-weight Hugging Face model.

The model fails everything; the point is that the real pipeline (loader, student prompt, generation,
math-verify grading in workers, split, provenance) runs and writes the right files.
"""

import hashlib
import json
from pathlib import Path

import pytest

from soar.cli import main
from soar.runs import read_problems

MATH500 = Path("/work/shared/data/math500.jsonl")  # the real benchmark files, as in test_math_task.py


@pytest.fixture(scope="module")
def random_llama(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("random_llama")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    lines = [json.loads(line)["problem"] for line in MATH500.read_text().splitlines()[:200]]
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(hf_tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=2048, pad_token_id=0, bos_token_id=1, eos_token_id=2))
    model.save_pretrained(path)
    hf_tok.save_pretrained(path)
    return path


@pytest.mark.skipif(not MATH500.exists(), reason="needs the shared MATH-500 file")
def test_filter_on_math500_with_a_random_model(random_llama, tmp_path):
    out = tmp_path / "hard"
    assert main(["filter", "--task", "math", "--format", "math", "--model", str(random_llama),
                 "--problems", str(MATH500), "--limit", "12", "--k", "2", "--max-new-tokens", "8",
                 "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    train, test = read_problems(out / "train.jsonl"), read_problems(out / "test.jsonl")
    assert manifest["candidates"] == 12 and manifest["hard"] == 12  # a random model solves nothing
    assert (manifest["train"], manifest["test"]) == (len(train), len(test)) == (6, 6)
    assert manifest["source_sha256"] == hashlib.sha256(MATH500.read_bytes()).hexdigest()
    assert manifest["model"] == str(random_llama) and manifest["k"] == 2 and manifest["format"] == "math"
    first = json.loads(MATH500.read_text().splitlines()[0])
    rows = {p["question"]: p["answer"] for p in train + test}
    assert rows[first["problem"]] == first["answer"]
