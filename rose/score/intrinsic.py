"""Intrinsic metrics of one synthetic dataset: pure functions over texts, tokens, embeddings and log-likelihoods.

Nothing here loads a model or knows about MLflow; :mod:`rose.score.tools` supplies tokens, embeddings,
language identification and token log-likelihoods, and :mod:`rose.score.run` logs the values.

Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143): the intrinsic heuristics RoSE is compared with;
distinct-n (Li et al. 2016), self-BLEU (Zhu et al. 2018), compression ratio (Shaib et al. 2024),
Vendi score (Friedman and Dieng 2023).
"""

from __future__ import annotations

import gzip
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import regex

from rose.generate.parse import YES  # the one list of words that accept, shared with the revision judge

# Scripts written without spaces between words: their words are split into grapheme clusters.
_NO_SPACE = regex.compile(r"[\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}\p{Han}\p{Hiragana}\p{Katakana}]")
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")
_GRAPHEME = regex.compile(r"\X")

# Direction of each metric when it is used to pick a candidate: +1 higher is better, -1 lower is better.
DIRECTION: dict[str, int] = {
    "distinct_1": 1, "distinct_2": 1, "distinct_3": 1, "token_entropy": 1, "self_bleu": -1, "compression_ratio": -1,
    "embedding_distance": 1, "vendi": 1, "target_language_share": 1, "duplicate_rate": -1, "length_mean": 1,
    "length_std": 1, "ngram_copy_rate": -1, "revision_acceptance": 1, "perplexity": -1, "generator_parameters": 1,
}  # fmt: skip


def simple_tokens(text: str) -> list[str]:
    """Fallback tokens for every script: lower-cased words, with words of scripts written without spaces
    (Thai, Lao, Khmer, Myanmar, CJK) split into grapheme clusters (a base letter with its marks)."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        out.extend(_GRAPHEME.findall(word) if _NO_SPACE.search(word) else [word])
    return out


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(token_lists: Iterable[Sequence[str]], n: int) -> float:
    """Distinct n-grams over all n-grams of the dataset (Li et al. 2016); 0 when there are none."""
    counts = Counter(g for tokens in token_lists for g in ngrams(tokens, n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def token_entropy(token_lists: Iterable[Sequence[str]]) -> float:
    """Shannon entropy (bits) of the dataset's token unigram distribution; 0 when there are no tokens.

    Higher means a more varied vocabulary. Reference: Cegin et al. 2025, RoSE (token entropy among the heuristics).
    """
    counts = Counter(t for tokens in token_lists for t in tokens)
    total = sum(counts.values())
    if not total:
        return 0.0
    p = np.fromiter(counts.values(), dtype=float) / total
    return float(-(p * np.log2(p)).sum())


def self_bleu(token_lists: Sequence[Sequence[str]], *, max_hypotheses: int | None = 200, seed: int = 0) -> float:
    """Mean sentence BLEU (sacrebleu, 0-100) of each example against all the others as references.

    Tokens are joined by spaces and scored with sacrebleu's ``none`` tokenizer, so any tokenisation works for
    any script (subword pieces or :func:`simple_tokens`), offline. At most ``max_hypotheses`` examples (a seeded
    sample) are scored as hypotheses; each against every other example. Lower means more diverse.

    sacrebleu's ``sentence_score`` would extract every reference's n-grams again for each hypothesis (quadratic in
    the examples); here each example's n-grams are extracted once, with the two largest counts of every n-gram
    over the examples (so the largest over all but the hypothesis is at hand), and sacrebleu's own statistics and
    score are computed from them: equal to ``sentence_score`` (tests/test_score_intrinsic.py).
    """
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    if len(token_lists) < 2:
        return 0.0
    bleu = BLEU(tokenize="none", effective_order=True)
    order = bleu.max_ngram_order
    grams = [extract_all_word_ngrams(bleu._preprocess_segment(" ".join(t)), 1, order) for t in token_lists]
    top: dict[tuple, list[tuple[int, int]]] = {}  # n-gram -> its two largest (count, example) over the examples
    for j, (counts, _) in enumerate(grams):
        for gram, c in counts.items():
            best = top.setdefault(gram, [(0, -1), (0, -1)])
            if c > best[0][0]:
                best[0], best[1] = (c, j), best[0]
            elif c > best[1][0]:
                best[1] = (c, j)
    lengths = [n for _, n in grams]
    index = list(range(len(grams)))
    if max_hypotheses and len(index) > max_hypotheses:
        index = sorted(random.Random(seed).sample(index, max_hypotheses))
    scores = []
    for i in index:
        counts, length = grams[i]
        correct, total = [0] * order, [0] * order
        for gram, c in counts.items():
            best = top[gram]
            total[len(gram) - 1] += c
            correct[len(gram) - 1] += min(c, best[0][0] if best[0][1] != i else best[1][0])
        closest = bleu._get_closest_ref_len(length, lengths[:i] + lengths[i + 1 :])
        scores.append(bleu._compute_score_from_stats([length, closest, *correct, *total]).score)
    return float(np.mean(scores))


def compression_ratio(texts: Sequence[str]) -> float:
    """UTF-8 size of the texts (one per line) over their gzip size; higher means more repetitive."""
    data = "\n".join(texts).encode("utf-8")
    return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0)) if data else 0.0


def _unit(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def mean_pairwise_cosine_distance(embeddings: np.ndarray) -> float:
    """Mean of 1 - cos(a, b) over all pairs of different examples."""
    x = _unit(embeddings)
    n = len(x)
    if n < 2:
        return 0.0
    total = x.sum(axis=0)
    sim_sum = float(total @ total) - float((x * x).sum())  # sum over ordered pairs a != b
    return 1.0 - sim_sum / (n * (n - 1))


def vendi_score(embeddings: np.ndarray) -> float:
    """Vendi score: exp of the Shannon entropy of the eigenvalues of the cosine similarity matrix / n.

    Computed through the d x d dual matrix (same non-zero eigenvalues), so it is cheap for many examples.
    Reference: Friedman and Dieng 2023, "The Vendi Score" (the ``vendi-score`` package's ``score_dual``).
    """
    x = _unit(embeddings)
    if len(x) == 0:
        return 0.0
    eig = np.linalg.eigvalsh(x.T @ x / len(x))
    eig = eig[eig > 1e-12]
    return float(math.exp(-(eig * np.log(eig)).sum()))


def target_language_share(
    texts: Sequence[str], target: str, identify: Callable[[list[str]], list[str | None]]
) -> float:
    """Share of texts that ``identify`` (one call for all of them) assigns to ``target`` (e.g. lingua's name of the
    language)."""
    return sum(found == target for found in identify(list(texts))) / len(texts) if texts else 0.0


def normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def duplicate_rate(texts: Sequence[str]) -> float:
    """Share of texts equal to an earlier one after case-folding and collapsing whitespace."""
    return 1 - len({normalise(t) for t in texts}) / len(texts) if texts else 0.0


def length_stats(token_lists: Sequence[Sequence[str]]) -> tuple[float, float]:
    """Mean and (population) standard deviation of the number of tokens per example."""
    lengths = np.array([len(t) for t in token_lists], dtype=float)
    return (float(lengths.mean()), float(lengths.std())) if len(lengths) else (0.0, 0.0)


def ngram_copy_rate(
    token_lists: Iterable[Sequence[str]], demo_token_lists: Iterable[Sequence[str]], n: int = 4
) -> float:
    """Share of the dataset's n-grams (counted with repetition) that occur in some demonstration."""
    seen = {g for tokens in demo_token_lists for g in ngrams(tokens, n)}
    grams = [g for tokens in token_lists for g in ngrams(tokens, n)]
    return sum(g in seen for g in grams) / len(grams) if grams else 0.0


def revision_acceptance(verdicts: Iterable[str | None]) -> float | None:
    """Share of reviewed examples whose verdict accepts them; None when no example carries a verdict."""
    given = [str(v).strip().lower() for v in verdicts if v not in (None, "")]
    return sum(v in YES for v in given) / len(given) if given else None


def perplexity(nll_sums: Sequence[float], token_counts: Sequence[int]) -> float:
    """exp(total negative log-likelihood / total predicted tokens) over the dataset."""
    total = float(np.sum(token_counts))
    return float(math.exp(float(np.sum(nll_sums)) / total)) if total else float("nan")
