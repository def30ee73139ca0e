"""Settings of ``rose generate``: one field per command-line flag and MLproject parameter.

Defaults follow the study (Anikina et al., EMNLP 2025): 100 examples and 10 demonstrations per label,
demonstrations cut to 128 words, label summaries from 10 English examples, temperature 0.4, top-p 0.9,
repetition penalty 1.2, 512 new tokens, context 4,096.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rose.config import field, known_encoding
from rose.languages import known_language
from rose.locations import SHARED_DATA
from rose.tasks import known_task

BACKENDS = ("hf", "llamacpp", "vllm", "openai", "fake", "auto")
GGUF_WEIGHTS = ("auto", "as-is", "f16")  # weights the llamacpp backend decodes (its decode_file)

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
    "tensor_parallel_size",
    "gguf_weights",  # the same model's weights in another storage: like batch_size, only the arithmetic differs
    "resume",
    "max_planned_requests",
    "encoding",  # a file read under another encoding either fails or gives the same text for ASCII data
)

# A run may plan at most this many generation requests unless --max-planned-requests says otherwise
MAX_PLANNED_REQUESTS = 100_000


@dataclass
class GenerateConfig:
    task: str = field(help="task: topic, intent, intent_all, sentiment or a task file (.yaml)", check=known_task)
    language: str = field(help="target language, an ISO 639-1 or 639-3 code (e.g. cy, am, yor)",
                          check=known_language)  # fmt: skip
    generator: str = field(help="model: a short offline name (smollm2-135m-instruct), a hub id, a folder or a .gguf")
    language_name: str = field("", help="the language's English name in prompts (default: from the language table)")
    pivot_language: str = field("en", help="language of label summaries and of pivot demonstrations (ISO code)",
                                check=known_language)  # fmt: skip
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
    source: str = field(SHARED_DATA, help="human data: the folder the task file's human_data is under, a "
                        ".jsonl/.csv/.parquet file, or 'hub'")  # fmt: skip
    text_column: str = field("", help="text column of a --source file (default: text)")
    label_column: str = field("", help="label column of a --source file (default: label)")
    label_map: str = field("", help="map a --source file's label values to the task's labels: "
                                    "0=science/technology,1=travel,... or a .json/.csv/.txt file")  # fmt: skip
    per_label: int = field(100, help="examples to keep per label", min=1)
    examples_per_request: int = field(20, help="examples asked for in one generation request", min=1)
    demos_per_label: int = field(10, help="demonstrations per label", min=0)
    demo_words: int = field(128, help="cut each demonstration to this many words (0: no cut)", min=0)
    redraw_demos: bool = field(False, help="draw new demonstrations for every request instead of once per label")
    summary_examples: int = field(10, help="pivot-language training examples a label summary is written from", min=1)
    summary_max_tokens: int = field(64, help="new tokens of a label summary", min=1)
    descriptions: str = field("", help="CSV of label descriptions (label,description); empty: generate them")
    descriptions_key: str = field("", help="label column of --descriptions (default: label, intent or category)")
    summary_model: str = field("", help="model writing label summaries (empty: the generator)")
    min_chars: int | None = field(None, help="shortest example kept (default: from the human examples' lengths)", min=0)
    max_chars: int | None = field(None, help="longest example kept (default: from the human examples' lengths)", min=1)
    max_requests_per_label: int = field(0, help="request budget per label (0: 3 x the requests N needs, + 3)", min=0)
    batch_size: int = field(16, help="requests per backend batch (llamacpp: sequences decoded together)", min=1)
    prompt_format: str = field(
        "auto",
        help="chat, completion (base models) or auto (chat if the model has a chat template)",
        choices=["auto", "chat", "completion"],
    )
    temperature: float = field(0.4, help="sampling temperature", min=0)
    top_p: float = field(0.9, help="nucleus sampling top-p", gt=0, max=1)
    repetition_penalty: float = field(1.2, help="repetition penalty", gt=0)
    max_new_tokens: int = field(512, help="new tokens per generation request", min=1)
    fit_answers: bool = field(False, help="stop an answer once it holds the examples its label still needs (one "
                                          "line more, for a preamble) or when no more example of the task's typical "
                                          "length fits in its tokens (backends with stop criteria: llamacpp); off: "
                                          "on the demo it cost kept examples (README)")  # fmt: skip
    stop_long_lines: bool = field(True, help="end an answer as soon as a line runs 40 characters past the longest "
                                             "example kept (it cannot become one; backends with stop criteria: "
                                             "llamacpp)")  # fmt: skip
    revision_max_tokens: int = field(64, help="new tokens per revision answer", min=1)
    context_length: int = field(4096, help="model context; demonstrations are dropped until a prompt fits", min=1)
    seed: int = field(0, help="seed of demonstrations, summaries and sampling", min=0)
    language_filter: bool = field(False, help="drop examples lingua does not identify as the target language")
    device: str = field("auto", help="hf backend: auto, cpu, cuda or cuda:N")
    gguf_weights: str = field(
        "auto",
        help="llamacpp backend: decode the GGUF's own weights (as-is) or a copy with 16-bit weights made once "
        "(f16: faster batches of Q4_1 weights on x86 CPUs); auto: f16 for smollm2-135m-instruct, measured faster, "
        "else as-is",
        choices=list(GGUF_WEIGHTS),
    )
    tensor_parallel_size: int = field(1, help="vllm backend: GPUs one generator is split over (e.g. 4 for a 70B "
                                              "model in 16 bits; with Ray, match --gpus-per-generator)", min=1)  # fmt: skip
    base_url: str = field("http://127.0.0.1:8000/v1", help="openai backend: the server's base URL")
    api_key_env: str = field(
        "OPENAI_API_KEY",
        help="openai backend: NAME of the environment variable holding the API key (the key itself is never logged)",
    )
    concurrency: int = field(8, help="openai backend: requests in flight at once", min=1)
    timeout: float = field(120.0, help="openai backend: seconds per request", gt=0)
    experiment: str = field("rose", help="MLflow experiment")
    cache_dir: str = field("", help="completion cache folder (default: <project>/.rose/cache)")
    output_dir: str = field("", help="local copy of the dataset (default: <project>/.rose/generate/<candidate>)")
    resume: bool = field(True, help="return an identical finished run instead of generating again")
    encoding: str = field("utf-8", help="text encoding of --source files (e.g. latin-1, cp1252)", check=known_encoding)
    max_planned_requests: int = field(
        MAX_PLANNED_REQUESTS,
        help="refuse a run that plans more generation requests than this (0: no limit)",
        min=0,
    )

    def problems(self) -> list[str]:
        """Checks across fields (see :func:`rose.config.validate`)."""
        out = []
        if self.min_chars is not None and self.max_chars is not None and self.min_chars > self.max_chars:
            out.append(f"--min-chars ({self.min_chars}) is more than --max-chars ({self.max_chars})")
        planned = planned_requests(self)
        if planned is not None and self.max_planned_requests and planned > self.max_planned_requests:
            out.append(
                f"this run plans up to {planned:,} generation requests (--per-label {self.per_label}, "
                f"--examples-per-request {self.examples_per_request}), more than the limit of "
                f"{self.max_planned_requests:,}: lower --per-label, or raise --max-planned-requests "
                "(0: no limit) if you mean it"
            )
        return out


def planned_requests(config: GenerateConfig) -> int | None:
    """The most generation requests a run may send: labels x the per-label budget (None: unknown task)."""
    from rose.errors import RoseError
    from rose.tasks import get_task

    try:
        task = get_task(config.task)
    except RoseError:
        return None
    if config.per_label < 1 or config.examples_per_request < 1:
        return None
    per_label = config.max_requests_per_label or 3 * math.ceil(config.per_label / config.examples_per_request) + 3
    return len(task.labels) * per_label
