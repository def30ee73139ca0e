"""Tiny, randomly initialised models for fast tests (no network, no downloads).

``make_tiny_classifier(folder)`` writes a transformers folder holding a 2-layer XLM-R-architecture encoder
(hidden size 32) and a fast tokenizer trained on the fly, the same layout as the offline encoder, so every
stage's tests can load it with ``AutoTokenizer`` / ``AutoModelForSequenceClassification``. Built in about
a second; the result is cached in ``folder`` (a second call returns at once).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the repository; ROSE_TEST_NO_SHARED=1 hides it, to test as a plain clone would
SHARED_DATA = (
    Path("/nonexistent/rose-test-no-shared")
    if os.environ.get("ROSE_TEST_NO_SHARED")
    else (ROOT.parent / "shared" / "data")
)
HAS_SHARED = SHARED_DATA.exists()
BUNDLED = ROOT / "rose" / "resources"  # rose's own English topic sentences, under sib200/en/
# a data folder with topic/en train, dev and test splits: the shared data when present, else rose's own bundle
TOPIC_EN = SHARED_DATA if HAS_SHARED else BUNDLED
needs_shared = pytest.mark.skipif(not HAS_SHARED, reason="needs ../shared/data (a language or task rose does not ship)")

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's order: <pad> is id 1

FALLBACK_TEXTS = [
    "The team won the match in the final minute.",
    "Doctors say the new vaccine works well.",
    "The election results were announced today.",
    "Scientists built a faster computer chip.",
    "The river flows through three countries.",
    "Tourists visit the old city every summer.",
    "The film was a hit at the festival.",
]


def corpus(limit: int = 2000) -> list[str]:
    """Sentences to train the tokenizer on: SIB-200 and MASSIVE text from the shared data when present."""
    texts: list[str] = []
    for path in sorted(SHARED_DATA.glob("*/*/train.jsonl")) if SHARED_DATA.exists() else []:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                text = row.get("text") or row.get("utt")
                if text:
                    texts.append(str(text))
                if len(texts) >= limit:
                    return texts
    return texts or FALLBACK_TEXTS * 10


def make_tiny_tokenizer(folder: Path, vocab_size: int = 2000):
    """A byte-level BPE tokenizer with XLM-R's special tokens, saved to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        model_max_length=512,
    )
    fast.save_pretrained(folder)
    return fast


def make_tiny_classifier(folder: str | Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A random XLM-R-architecture encoder + tokenizer in ``folder`` (cached); returns the folder.

    Saved as a bare encoder (``XLMRobertaModel``, like the offline e5 encoder), so loading it with
    ``AutoModelForSequenceClassification`` adds a freshly initialised head, as for a real base model.
    """
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    folder = Path(folder)
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tiny_tokenizer(folder)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=514,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
    )
    torch.manual_seed(seed)
    XLMRobertaModel(config).save_pretrained(folder)
    return folder


def write_dataset(path: Path, rows: list[tuple[str, str]], candidate: str | None = None) -> Path:
    """Write ``(text, label)`` rows as a generated-dataset jsonl (``candidate`` field when given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for text, label in rows:
            row = {"text": text, "label": label}
            if candidate:
                row["candidate"] = candidate
            fh.write(json.dumps(row) + "\n")
    return path


def human_rows(task_dataset: str = "sib200", language: str = "en", split: str = "train", per_label: int = 5):
    """Up to ``per_label`` (text, label) rows per label from the shared data, else (English topic) from rose's
    bundled sentences (for synthetic-looking files)."""
    path = SHARED_DATA / task_dataset / language / f"{split}.jsonl"
    if not HAS_SHARED and (task_dataset, language) == ("sib200", "en"):
        path = BUNDLED / "sib200" / language / f"{split}.jsonl"
    seen: dict[str, int] = {}
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            label = row["label"]
            if seen.get(label, 0) < per_label:
                seen[label] = seen.get(label, 0) + 1
                rows.append((row["text"], label))
    return rows
