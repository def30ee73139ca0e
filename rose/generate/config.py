"""Settings of ``rose generate``: one field per command-line flag and MLproject parameter.

Defaults follow the study (Anikina et al., EMNLP 2025): 100 examples and 10 demonstrations per label,
demonstrations cut to 128 words, label summaries from 10 English examples, temperature 0.4, top-p 0.9,
repetition penalty 1.2, 512 new tokens, context 4,096.
"""

from __future__ import annotations

from dataclasses import dataclass

from rose.config import field

BACKENDS = ("hf", "llamacpp", "vllm", "openai", "fake", "auto")

# Fields that do not change what is generated: left out of the run's digest.
NOT_IN_DIGEST = (
    "experiment",
    "cache_dir",
    "output_dir",
    "api_key_env",
    "concurrency",
    "timeout",
    "batch_size",
    "device",
    "resume",
)


@dataclass
class GenerateConfig:
    task: str = field(help="task: topic, intent, intent_all or sentiment")
    language: str = field(help="target language, ISO 639-1 code (e.g. cy)")
    generator: str = field(help="model: a short offline name (smollm2-135m-instruct), a hub id, a folder or a .gguf")
    strategy: str = field(
        "target_demos",
        help="a preset (sl, english_demos_sl, english_demos_revision, "
        "target_demos, target_demos_sl, target_demos_revision, target_demos_sl_revision, "
        "zero_shot) or a YAML strategy file",
    )
    backend: str = field(
        "hf",
        help="hf (transformers), llamacpp (GGUF files, llama-cpp-python), vllm, openai (any OpenAI-compatible "
        "server), fake, or auto (llamacpp for GGUF models when llama-cpp-python is installed, else hf)",
        choices=list(BACKENDS),
    )
    source: str = field("../shared/data", help="human data: a folder <dataset>/<lang>/<split>.jsonl, or 'hub'")
    per_label: int = field(100, help="examples to keep per label")
    examples_per_request: int = field(20, help="examples asked for in one generation request")
    demos_per_label: int = field(10, help="demonstrations per label")
    demo_words: int = field(128, help="cut each demonstration to this many words")
    redraw_demos: bool = field(False, help="draw new demonstrations for every request instead of once per label")
    summary_examples: int = field(10, help="English training examples the label summary is written from")
    summary_max_tokens: int = field(64, help="new tokens of a label summary")
    descriptions: str = field("", help="CSV of label descriptions (label,description); empty: generate them")
    summary_model: str = field("", help="model writing label summaries (empty: the generator)")
    min_chars: int | None = field(None, help="shortest example kept (default: from the human examples' lengths)")
    max_chars: int | None = field(None, help="longest example kept (default: from the human examples' lengths)")
    max_requests_per_label: int = field(0, help="request budget per label (0: 3 x the requests N needs, + 3)")
    batch_size: int = field(16, help="requests per backend batch (llamacpp: sequences decoded together)")
    prompt_format: str = field(
        "auto",
        help="chat, completion (base models) or auto (chat if the model has a chat template)",
        choices=["auto", "chat", "completion"],
    )
    temperature: float = field(0.4, help="sampling temperature")
    top_p: float = field(0.9, help="nucleus sampling top-p")
    repetition_penalty: float = field(1.2, help="repetition penalty")
    max_new_tokens: int = field(512, help="new tokens per generation request")
    revision_max_tokens: int = field(64, help="new tokens per revision answer")
    context_length: int = field(4096, help="model context; demonstrations are dropped until a prompt fits")
    seed: int = field(0, help="seed of demonstrations, summaries and sampling")
    language_filter: bool = field(False, help="drop examples lingua does not identify as the target language")
    device: str = field("auto", help="hf backend: auto, cpu, cuda or cuda:N")
    base_url: str = field("http://127.0.0.1:8000/v1", help="openai backend: the server's base URL")
    api_key_env: str = field(
        "OPENAI_API_KEY",
        help="openai backend: NAME of the environment variable holding the API key (the key itself is never logged)",
    )
    concurrency: int = field(8, help="openai backend: requests in flight at once")
    timeout: float = field(120.0, help="openai backend: seconds per request")
    experiment: str = field("rose", help="MLflow experiment")
    cache_dir: str = field("", help="completion cache folder (default: <project>/.rose/cache)")
    output_dir: str = field("", help="local copy of the dataset (default: <project>/.rose/generate/<candidate>)")
    resume: bool = field(True, help="return an identical finished run instead of generating again")
