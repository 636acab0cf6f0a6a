"""Diagnostics on question sets: Vendi score, char n-gram TF-IDF, question and toy-truth statistics."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from soar.diagnostics import (char_ngram_tfidf, question_stats, rejection_stats, sentence_embeddings,
                              toy_truth_stats, vendi_score)

TOY_QUESTIONS = ["0471+3852=", "1234+4321=", "9999+0001=", "5050+5050=", "0008+0009="]


def exp_entropy(*eigenvalues: float) -> float:
    """The Vendi score of a kernel matrix with these nonzero eigenvalues."""
    return math.exp(-sum(p * math.log(p) for p in eigenvalues))


# ---------------------------------------------------------------- Vendi score

@pytest.mark.parametrize("rows, expected", [
    (np.ones((5, 3)), 1.0),  # identical rows
    (np.tile([[0.0, 3.0, 4.0]], (7, 1)), 1.0),  # identical directions, any norm
    (np.eye(4), 4.0),  # orthogonal rows
    (np.eye(6)[:4], 4.0),  # n < d
    (np.vstack([np.eye(3)] * 3), 3.0),  # each of 3 orthogonal rows three times
    (np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), exp_entropy(2 / 3, 1 / 3)),  # 1.8899
    (np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0] / np.sqrt(2), [1.0, -1.0] / np.sqrt(2)]), 2.0),  # n > d
    (np.zeros((4, 3)), 1.0),  # zero rows: one shared item
    (np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), exp_entropy(1 / 2, 1 / 4, 1 / 4)),
    (np.zeros((0, 3)), 0.0),
])
def test_vendi_score_worked_examples(rows, expected):
    assert vendi_score(rows) == pytest.approx(expected, abs=1e-9)


def test_vendi_score_gram_side_does_not_matter():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8))  # n > d: the (d, d) Gram matrix
    padded = np.hstack([X, np.zeros((30, 40))])  # same rows, n < d: the (n, n) one
    assert vendi_score(X) == pytest.approx(vendi_score(padded), rel=1e-9)
    assert 1.0 < vendi_score(X) <= 8.0


def test_duplicates_lower_vendi():
    # True here because the questions are dissimilar; in general copying one item of a near-duplicate
    # pair can raise the score (the Vendi score weighs items by multiplicity).
    deduplicated = TOY_QUESTIONS
    duplicated = TOY_QUESTIONS + [TOY_QUESTIONS[0]] * 3 + [TOY_QUESTIONS[1]]
    assert vendi_score(char_ngram_tfidf(duplicated)) < vendi_score(char_ngram_tfidf(deduplicated))
    assert vendi_score(char_ngram_tfidf([TOY_QUESTIONS[0]] * 10)) == pytest.approx(1.0, abs=1e-9)


def test_vendi_score_rejects_non_matrices():
    with pytest.raises(ValueError, match="2-D"):
        vendi_score(np.ones(3))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=25))
def test_vendi_of_any_strings_is_between_1_and_n(texts):
    score = vendi_score(char_ngram_tfidf(texts))
    assert 1.0 - 1e-9 <= score <= len(texts) + 1e-9


# ---------------------------------------------------------------- char n-gram TF-IDF

def test_tfidf_worked_example():
    X = char_ngram_tfidf(["ab", "abc"], n_range=(2, 2))
    bc_idf = math.log(1.5) + 1
    assert X.shape == (2, 2**13)
    assert float(X[0] @ X[1]) == pytest.approx(1 / math.sqrt(1 + bc_idf**2), abs=1e-12)  # 0.580
    assert sorted(np.abs(X[1][X[1] != 0])) == pytest.approx(sorted([1, bc_idf] / np.sqrt(1 + bc_idf**2)))


def test_tfidf_rows_unit_norm_identical_texts_identical_rows_deterministic():
    texts = TOY_QUESTIONS + ["What is $1+1$?", "what  is $1+1$?", "0471+3852="]
    X = char_ngram_tfidf(texts)
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0)
    assert np.array_equal(X[0], X[-1])
    assert np.array_equal(X[5], X[6])  # case and whitespace runs are normalised away
    assert np.array_equal(X, char_ngram_tfidf(list(texts)))
    assert not np.array_equal(X[0], X[1])


def test_tfidf_texts_without_ngrams_give_zero_rows():
    X = char_ngram_tfidf(["", "a", "  ", "ab"], n_range=(2, 3), dim=64)
    assert X.shape == (4, 64)
    assert np.linalg.norm(X, axis=1).tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0])
    assert vendi_score(X) == pytest.approx(exp_entropy(3 / 4, 1 / 4))


def test_tfidf_of_no_texts():
    assert char_ngram_tfidf([], dim=16).shape == (0, 16)


# ---------------------------------------------------------------- sentence embeddings (tiny random BERT)

def test_sentence_embeddings_with_tiny_random_bert(tmp_path):
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789+= "))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]").save_pretrained(tmp_path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(tmp_path)

    texts = ["ab", "0471+3852=", "what is one plus one", "ab"]
    E = sentence_embeddings(texts, str(tmp_path), batch_size=3)
    assert E.shape == (4, 16)
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert np.allclose(E[0], E[3], atol=1e-5)  # "ab" padded in a batch of three == "ab" alone
    assert 1.0 < question_stats(texts, embed=lambda qs: sentence_embeddings(qs, str(tmp_path)))["vendi"] < 4.0


# ---------------------------------------------------------------- question statistics

def test_question_stats_worked_example():
    stats = question_stats(["1+1=", "1+1=", "2+2= "])
    assert {k: v for k, v in stats.items() if k != "vendi"} == pytest.approx(
        {"count": 3, "distinct": 2, "duplicate_rate": 1 / 3, "mean_chars": 13 / 3, "median_chars": 4.0,
         "max_chars": 5})
    assert 1.0 < stats["vendi"] < 2.0


def test_question_stats_whitespace_duplicates_and_custom_embedding():
    questions = ["What is 2+2?", "What  is 2+2? ", "\tWhat is 2+2?", "Name a prime."]
    stats = question_stats(questions, embed=lambda qs: np.eye(len(qs)))
    assert stats["distinct"] == 2 and stats["duplicate_rate"] == 0.5
    assert stats["vendi"] == pytest.approx(4.0)  # the embedding given, not TF-IDF


def test_question_stats_of_nothing():
    assert question_stats([]) == {"count": 0, "distinct": 0, "duplicate_rate": 0.0, "mean_chars": 0.0,
                                  "median_chars": 0.0, "max_chars": 0, "vendi": 0.0}


# ---------------------------------------------------------------- toy-world truth and rejections

def test_toy_truth_stats_worked_example():
    problems = [{"question": "0471+3852=", "answer": "04323"},  # correct, 2 carries: a stepping stone
                {"question": "1234+4321=", "answer": "05555"},  # correct, carry-free: not a stone
                {"question": "0471+3852=", "answer": "03223"},  # carries dropped: wrong
                {"question": "0999+0001=", "answer": "01000"},  # correct but 3 carries: too hard to be a stone
                {"question": "1234+4321=", "answer": "06665"},  # carries where there are none: too high
                {"question": "12+3=", "answer": "015"},  # operands of different widths
                {"question": "what is 1+1?", "answer": "2"}]
    assert toy_truth_stats(problems) == {"count": 7, "well_formed": pytest.approx(5 / 7),
                                         "correct": pytest.approx(3 / 7), "stepping_stone": pytest.approx(1 / 7),
                                         "too_high": pytest.approx(1 / 7), "carries": {"0": 2, "2": 2, "3": 1}}


def test_toy_truth_stats_of_nothing():
    assert toy_truth_stats([]) == {"count": 0, "well_formed": 0.0, "correct": 0.0, "stepping_stone": 0.0,
                                   "too_high": 0.0, "carries": {}}


@pytest.mark.parametrize("rejections, accepted, expected", [
    ({"malformed": 3, "wrong_width": 1}, 6,
     {"samples": 10, "acceptance_rate": 0.6, "rejection_shares": {"malformed": 0.3, "wrong_width": 0.1}}),
    ({}, 4, {"samples": 4, "acceptance_rate": 1.0, "rejection_shares": {}}),
    ({"no_box": 2}, 0, {"samples": 2, "acceptance_rate": 0.0, "rejection_shares": {"no_box": 1.0}}),
    ({}, 0, {"samples": 0, "acceptance_rate": 0.0, "rejection_shares": {}}),
])
def test_rejection_stats(rejections, accepted, expected):
    assert rejection_stats(rejections, accepted) == expected  # 3 / 10 == 0.3 in floating point too
