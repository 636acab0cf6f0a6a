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


CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant: {% endif %}")
TEACHER_REPLY = "<question>What is $2+3$?</question><answer>\\boxed{5}</answer>"


@pytest.fixture(scope="module")
def teaching_llama(random_llama, tmp_path_factory):
    """The random model, taught by a few SFT steps to answer the chat-wrapped teacher prompt with one
    well-formed (question, answer) pair: enough for the loop's teacher filter to accept its samples."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from soar.tasks.math import make_task

    path = tmp_path_factory.mktemp("teaching_llama")
    tok = AutoTokenizer.from_pretrained(random_llama)
    tok.chat_template = CHAT_TEMPLATE
    prompt = make_task(tokenizer=tok).teacher_prompt
    prompt_ids = tok(prompt)["input_ids"]
    reply_ids = tok(TEACHER_REPLY, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([prompt_ids + reply_ids])
    labels = ids.clone()
    labels[0, :len(prompt_ids)] = -100
    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(random_llama)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, loss.item()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.skipif(not MATH500.exists(), reason="needs the shared MATH-500 file")
def test_filter_then_one_soar_step_on_maths_with_chat_template(teaching_llama, tmp_path):
    hard, run = tmp_path / "hard", tmp_path / "run"
    assert main(["filter", "--task", "math", "--format", "math", "--chat-template", "--model", str(teaching_llama),
                 "--problems", str(MATH500), "--limit", "8", "--k", "2", "--max-new-tokens", "8",
                 "--out", str(hard)]) == 0
    assert json.loads((hard / "manifest.json").read_text())["chat_template"] is True
    assert main(["train", "--task", "math", "--chat-template", "--model", str(teaching_llama),
                 "--hard-set", str(hard), "--out", str(run), "--outer-steps", "1", "--group-size", "2",
                 "--dataset-size", "2", "--num-repeats", "1", "--inner-steps", "1", "--num-reward-questions", "2",
                 "--teacher-max-new-tokens", "80", "--generation.max-new-tokens", "8",
                 "--student.batch-questions", "2", "--student.group-size", "2"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1 and all(r == r and abs(r) < 1e9 for r in metrics[0]["teacher/dataset_rewards"])
    questions = read_problems(run / "questions" / "step_0000.jsonl")
    assert len(questions) == 4 and all(q["answer"] for q in questions)
    assert (run / "ckpt_0001" / "teacher" / "model.safetensors").exists()
