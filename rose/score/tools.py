"""The tools behind the intrinsic metrics, and :func:`measure_dataset`, which applies them to one dataset.

A tool is a plain callable (or a :class:`~rose.score.models.ReferenceLM`), so the tests can pass any stand-in.
The models behind them live by what they are: :mod:`rose.score.models` (parameter counts, the reference LM and
the languages it reads), :mod:`rose.language_id` (language identification), :mod:`rose.score.embeddings`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from rose.score import intrinsic
from rose.score.models import ReferenceLM

log = logging.getLogger(__name__)

E5 = "multilingual-e5-small"
WORDS = "words"  # the tokens of intrinsic.simple_tokens, where no subword tokenizer is used

# The metrics each chosen tool decides. The others (compression ratio, duplicate rate, target-language share,
# revision acceptance, parameter count) need no tool a score chooses: they are measured whenever one is.
MEASURED_WITH: dict[str, tuple[str, ...]] = {
    "tokenizer": ("distinct_1", "distinct_2", "distinct_3", "token_entropy", "self_bleu", "length_mean", "length_std",
                  "ngram_copy_rate"),
    "embedding_model": ("embedding_distance", "vendi"),
    "reference_lm": ("perplexity",),
}  # fmt: skip


@dataclass
class Tools:
    """Callables for the intrinsic metrics; a None tool skips the metrics that need it."""

    tokenize: Callable[[str], list[str]] = intrinsic.simple_tokens
    embed: Callable[[list[str]], np.ndarray] | None = None
    identify: Callable[[list[str]], list[str | None]] | None = None  # language ID of many texts in one call
    reference_lm: ReferenceLM | None = None
    keys: dict[str, str] = field(default_factory=dict)  # what measured each group of MEASURED_WITH (tool_key)


def tool_key(name: str, *, sample: int, seed: int, languages: Collection[str] = (), dtype: str = "float32") -> str:
    """What a group of intrinsic metrics was measured with: the tool and the settings its values depend on
    (``""``: no tool, the group is not measured). A dtype other than float32 is part of it."""
    if not name:
        return ""
    declared = f" languages={','.join(sorted(languages))}" if languages else ""
    precision = f" dtype={dtype}" if dtype != "float32" else ""
    return f"{name}{declared}{precision} sample={sample} seed={seed}"


def subword_tokenizer(name: str = E5) -> Callable[[str], list[str]]:
    """Sentencepiece pieces of a transformers tokenizer (the multilingual e5 one by default); falls back to
    :func:`rose.score.intrinsic.simple_tokens` when it cannot be loaded offline."""
    try:
        from transformers import AutoTokenizer

        from rose.assets import resolve_model

        tok = AutoTokenizer.from_pretrained(resolve_model(name))
    except Exception as exc:  # missing asset, no network: the fallback still works for every script
        log.warning("tokenizer %s unavailable (%s); using word/grapheme tokens", name, str(exc).splitlines()[0])
        return intrinsic.simple_tokens
    return lambda text: [p for p in tok.tokenize(text.lower()) if p not in ("▁", "")]


def measure_dataset(
    texts: list[str],
    *,
    language: str = "",
    language_lingua: str = "",
    demonstrations: list[str] = (),
    verdicts: list[str | None] = (),
    tools: Tools | None = None,
    sample: int = 1000,
    seed: int = 0,
    groups: Collection[str] | None = None,
) -> dict[str, float]:
    """Every intrinsic metric of one dataset in ``language`` (ISO 639-1) that the given tools allow.

    Corpus statistics use all texts; the costly ones (self-BLEU hypotheses, embeddings, perplexity) use a seeded
    sample of at most ``sample`` texts. Perplexity is left out (not available) unless the reference LM reads
    ``language``. ``groups`` (keys of :data:`MEASURED_WITH`) limits the tool-dependent metrics to those groups
    (default: all). Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143).
    """
    tools = tools or Tools()
    groups = set(MEASURED_WITH) if groups is None else set(groups)
    rng = np.random.default_rng(seed)
    subset = [texts[i] for i in sorted(rng.permutation(len(texts))[:sample])] if len(texts) > sample else texts
    out: dict[str, float] = {}
    if "tokenizer" in groups:
        tokens = [tools.tokenize(t) for t in texts]
        out.update({f"distinct_{n}": intrinsic.distinct_n(tokens, n) for n in (1, 2, 3)})
        out["token_entropy"] = intrinsic.token_entropy(tokens)
        out["self_bleu"] = intrinsic.self_bleu(tokens, max_hypotheses=min(sample, 200), seed=seed)
        out["length_mean"], out["length_std"] = intrinsic.length_stats(tokens)
        if demonstrations:
            out["ngram_copy_rate"] = intrinsic.ngram_copy_rate(tokens, [tools.tokenize(d) for d in demonstrations])
    out["compression_ratio"] = intrinsic.compression_ratio(texts)
    out["duplicate_rate"] = intrinsic.duplicate_rate(texts)
    accepted = intrinsic.revision_acceptance(verdicts)
    if accepted is not None:
        out["revision_acceptance"] = accepted
    if tools.identify and language_lingua:
        out["target_language_share"] = intrinsic.target_language_share(texts, language_lingua, tools.identify)
    if tools.embed and subset and "embedding_model" in groups:
        emb = tools.embed(subset)
        out["embedding_distance"] = intrinsic.mean_pairwise_cosine_distance(emb)
        out["vendi"] = intrinsic.vendi_score(emb)
    lm = tools.reference_lm
    if lm is not None and subset and "reference_lm" in groups:
        if lm.reads(language):
            out["perplexity"] = intrinsic.perplexity(*lm.nll(subset))
        else:
            log.info("perplexity not available: %s does not read %r", lm.name, language)
    return out
