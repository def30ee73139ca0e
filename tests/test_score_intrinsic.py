"""Each intrinsic metric against values computed by hand (and the reference libraries where one exists)."""

import gzip
import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from rose.score import intrinsic as m


def test_simple_tokens_split_thai_into_graphemes_and_keep_words_elsewhere():
    assert m.simple_tokens("แมวกินปลา") == ["แ", "ม", "ว", "กิ", "น", "ป", "ล", "า"]  # a vowel mark stays on ก
    assert m.simple_tokens("Bore da, Cymru!") == ["bore", "da", "cymru"]
    assert m.simple_tokens("שלום עולם") == ["שלום", "עולם"]


def test_distinct_n_by_hand():
    tokens = [["a", "b", "a"], ["a", "b"]]
    assert m.distinct_n(tokens, 1) == pytest.approx(2 / 5)
    assert m.distinct_n(tokens, 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert m.distinct_n(tokens, 3) == pytest.approx(1.0)
    assert m.distinct_n([["a"]], 2) == 0.0


def test_distinct_n_thai():
    tokens = [m.simple_tokens("แมวกินปลา"), m.simple_tokens("แมวกินนม")]
    assert m.distinct_n(tokens, 1) == pytest.approx(8 / 15)
    assert m.distinct_n(tokens, 2) == pytest.approx(9 / 13)  # 7 + 6 bigrams; แม มว วกิ กิน shared


def test_self_bleu_equals_sacrebleu_sentence_scores():
    """Each example's n-grams extracted once: the same value as sacrebleu's sentence_score against the others."""
    import random

    from sacrebleu.metrics import BLEU

    rng = random.Random(3)
    words = ["the", "team", "won", "a", "match", "rain", "city", "new", "law", "the"]
    lists = [[rng.choice(words) for _ in range(rng.randint(1, 12))] for _ in range(40)] + [["the", "team"]] * 3
    texts = [" ".join(t) for t in lists]
    bleu = BLEU(tokenize="none", effective_order=True)
    expected = [bleu.sentence_score(texts[i], texts[:i] + texts[i + 1 :]).score for i in range(len(texts))]
    assert m.self_bleu(lists) == pytest.approx(float(np.mean(expected)), abs=1e-9)
    sampled = sorted(random.Random(0).sample(range(len(texts)), 10))
    assert m.self_bleu(lists, max_hypotheses=10) == pytest.approx(float(np.mean([expected[i] for i in sampled])))


def test_self_bleu_by_hand():
    assert m.self_bleu([["a", "b", "c", "d"]] * 2) == pytest.approx(100.0)
    assert m.self_bleu([["a", "b"], ["c", "d"]]) == pytest.approx(0.0)
    # p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0/1 -> exp smoothing gives 1/2; equal lengths, no brevity penalty
    expected = 100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25
    assert m.self_bleu([["a", "b", "c", "d"], ["a", "b", "c", "e"]]) == pytest.approx(expected, abs=1e-6)
    assert m.self_bleu([["a"]]) == 0.0


def test_self_bleu_samples_hypotheses_reproducibly():
    tokens = [[f"w{i}", f"w{i % 3}", "x"] for i in range(30)]
    assert m.self_bleu(tokens, max_hypotheses=5, seed=1) == m.self_bleu(tokens, max_hypotheses=5, seed=1)


def test_compression_ratio():
    texts = ["ab", "cd"]
    raw = b"ab\ncd"
    assert m.compression_ratio(texts) == pytest.approx(len(raw) / len(gzip.compress(raw, 9, mtime=0)))
    assert m.compression_ratio(["the same line"] * 50) > m.compression_ratio([f"line {i} {i**3}" for i in range(50)])
    assert m.compression_ratio([]) == 0.0


def test_mean_pairwise_cosine_distance():
    assert m.mean_pairwise_cosine_distance(np.array([[1.0, 0], [2.0, 0], [0, 3.0]])) == pytest.approx(2 / 3)
    x = np.random.default_rng(0).normal(size=(12, 5))
    assert m.mean_pairwise_cosine_distance(x) == pytest.approx(pdist(x, "cosine").mean())


def test_vendi_score():
    assert m.vendi_score(np.ones((5, 3))) == pytest.approx(1.0)  # all alike: one effective example
    assert m.vendi_score(np.eye(4)) == pytest.approx(4.0)  # all orthogonal: four
    x = np.random.default_rng(0).normal(size=(20, 5))
    from vendi_score import vendi

    assert m.vendi_score(x) == pytest.approx(vendi.score_X(x), rel=1e-6)


def test_target_language_share():
    calls = []

    def identify(texts):
        calls.append(len(texts))
        return [{"x": "WELSH", "y": "ENGLISH"}.get(t) for t in texts]

    assert m.target_language_share(["x", "y", "z", "x"], "WELSH", identify) == pytest.approx(0.5)
    assert m.target_language_share([], "WELSH", identify) == 0.0
    assert calls == [4]  # one call for all the texts: lingua's parallel detection costs 16 ms a call


def test_duplicate_rate_and_lengths():
    assert m.duplicate_rate(["A b", "a  B", "c", "c"]) == pytest.approx(2 / 4)
    assert m.length_stats([["a", "b"], ["a", "b", "c", "d"]]) == pytest.approx((3.0, 1.0))


def test_ngram_copy_rate():
    assert m.ngram_copy_rate([["a", "b", "c"]], [["b", "c", "d"]], n=2) == pytest.approx(0.5)  # bc of ab, bc
    assert m.ngram_copy_rate([["a", "b"]], [], n=2) == 0.0


def test_revision_acceptance():
    assert m.revision_acceptance(["accepted", "rejected", None, "OK"]) == pytest.approx(2 / 3)
    assert m.revision_acceptance([None, ""]) is None


def test_perplexity():
    assert m.perplexity([2.0, 4.0], [1, 3]) == pytest.approx(math.exp(6 / 4))


def test_token_entropy_by_hand():
    # unigrams: a x3, b x2, c x1, d x2 (8 tokens): H = -sum p log2 p
    tokens = [["a", "b", "a"], ["c", "a", "b"], ["d", "d"]]
    p = [3 / 8, 2 / 8, 1 / 8, 2 / 8]
    assert m.token_entropy(tokens) == pytest.approx(-sum(q * math.log2(q) for q in p))
    assert m.token_entropy([["x", "y", "z", "w"]]) == pytest.approx(2.0)  # 4 equiprobable tokens: 2 bits
    assert m.token_entropy([["x", "x"]]) == 0.0 and m.token_entropy([[], []]) == 0.0
    thai = [m.simple_tokens("แมวกินปลา")]  # graphemes of a script without spaces: 8 distinct units, 3 bits
    assert m.token_entropy(thai) == pytest.approx(3.0)
