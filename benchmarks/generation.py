"""Generation speed of the demo's candidates on three engines, in one run, on the same prompts and sampling.

Each engine runs rose's own generation loop (``rose.generate.run_strategy``: the same strategy, prompts, request
plan, parser, length filter and deduplication, the same temperature, top-p, repetition penalty and token limit)
for every candidate of a study file (default: ``configs/demo.yaml``, its ``generate`` settings), each with a fresh
completion cache, so every answer is generated:

- ``llamacpp``: rose's llamacpp backend (the GGUF file, many sequences decoded together in llama.cpp);
- ``hf``: rose's hf backend (transformers, left-padded batches, per-request seeded sampler);
- ``pipeline``: the naive baseline, ``transformers.pipeline("text-generation")`` on the same model object as the hf
  row, called with its documented ``batch_size`` (the study's ``batch_size``) and the same sampling arguments.

Kept examples per second is kept examples / seconds spent in the engine (model loading excluded, reported apart);
the CPU seconds of the process (all threads) are printed too, a steadier figure on a machine shared with other work.
Tokens are counted the same way on every row: every answer the engine produced (kept or not) is tokenized again
with the model's own transformers tokenizer; tokens per kept example is printed per candidate and per engine. Prints one row per engine, then the ratios; exits 1 when llamacpp's
kept examples per second is below ``--target`` times the hf row's.

    python benchmarks/generation.py                             # the demo's three candidates, 8 per label
    python benchmarks/generation.py --per-label 2 --only 1      # a quick check (the first candidate only)
    python benchmarks/generation.py --engines llamacpp,hf       # leave the baseline out
    python benchmarks/generation.py --engines llamacpp --before 5e9a032   # against rose as it was at a commit

``--before REF`` adds a ``before`` row: this same benchmark as it was at git commit ``REF`` (default for the issue
"A study at the speed of its compute": ``5e9a032``, rose when the issue was filed), run first, in its own process,
with that commit's rose (a temporary ``git worktree``) on its ``llamacpp`` engine and the study file as it was at
that commit (a study file inside the repository; any other file as it is), with the same per-label count, token
limit and batch where given on the command line; then ``llamacpp / before`` is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("llamacpp", "hf", "pipeline")


@dataclass
class Row:
    engine: str
    kept: int = 0
    answers: int = 0
    tokens: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the process (all its threads) while generating
    load_seconds: float = 0.0
    per_candidate: list[str] = field(default_factory=list)

    @property
    def kept_per_s(self) -> float:
        return self.kept / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_kept(self) -> float:
        return self.tokens / self.kept if self.kept else float("nan")

    @property
    def kept_per_cpu_s(self) -> float:
        return self.kept / self.cpu_seconds if self.cpu_seconds else 0.0


class PipelineBackend:
    """The naive baseline as a rose backend: ``pipeline(...)(inputs, batch_size=B, do_sample=True, ...)``."""

    name = "pipeline"

    def __init__(self, model: str, batch_size: int):
        from rose.generate.backends.hf import HFBackend

        self.model = model
        self.batch_size = batch_size
        self._hf = HFBackend(model, batch_size=batch_size)  # loads the model exactly as the hf row does
        self.pipe = None

    def load(self) -> None:
        if self.pipe is not None:
            return
        import torch
        from transformers import pipeline

        self._hf.load()
        torch.manual_seed(0)  # the pipeline samples from torch's global generator
        self.pipe = pipeline("text-generation", model=self._hf.lm, tokenizer=self._hf.tok, device=self._hf.lm.device)

    @property
    def is_chat(self) -> bool:
        return self._hf.is_chat

    def count_tokens(self, rendered) -> int:
        return self._hf.count_tokens(rendered)

    def generate(self, requests):
        from rose.generate.backends import Completion

        self.load()
        p = requests[0].params
        outs = self.pipe(
            [r.rendered for r in requests],
            batch_size=self.batch_size,
            do_sample=p.temperature > 0,
            temperature=p.temperature if p.temperature > 0 else None,
            top_p=p.top_p,
            repetition_penalty=p.repetition_penalty,
            max_new_tokens=p.max_new_tokens,
            return_full_text=False,
        )
        answers = []
        for out in outs:
            text = out[0]["generated_text"]
            if isinstance(text, list):  # a chat: the last message is the answer
                text = text[-1]["content"]
            n = len(self._hf.tok(text, add_special_tokens=False).input_ids)
            answers.append(
                Completion(text.strip(), n_tokens=n, finish_reason="length" if n >= p.max_new_tokens else "stop")
            )
        return answers

    def generate_each(self, requests):
        yield from enumerate(self.generate(requests))

    def close(self) -> None:
        self.pipe = None


def make_backend(engine: str, model: str, config):
    if engine == "pipeline":
        return PipelineBackend(model, config.batch_size)
    from rose.generate.backends import get_backend

    return get_backend(engine, config, model)


def answers_in(cache_path: Path) -> list[str]:
    with sqlite3.connect(cache_path) as db:
        return [row[0] for row in db.execute("select text from completions")]


def run_engine(engine: str, candidates, base: dict, tokenizers: dict) -> Row:
    from rose.generate.cache import CompletionCache
    from rose.generate.config import GenerateConfig
    from rose.generate.run import run_strategy

    row = Row(engine)
    for generator, strategy in candidates:
        config = GenerateConfig(**{**base, "generator": generator, "strategy": strategy, "backend": engine
                                   if engine != "pipeline" else "hf"})  # fmt: skip
        backend = make_backend(engine, generator, config)
        t0 = time.perf_counter()
        backend.load()
        load = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:  # a fresh cache: every request is generated
            cache = CompletionCache(Path(tmp) / "completions.sqlite")
            cpu = time.process_time()
            state, ctx = run_strategy(config, backend, cache)
            cpu = time.process_time() - cpu
            cache.close()
            texts = answers_in(Path(tmp) / "completions.sqlite")
        backend.close()
        tok = tokenizers[generator]
        tokens = sum(len(tok(t, add_special_tokens=False).input_ids) for t in texts)
        kept, seconds = sum(state.kept().values()), ctx.stats["generation_seconds"]
        row.kept += kept
        row.answers += len(texts)
        row.tokens += tokens
        row.seconds += seconds
        row.cpu_seconds += cpu
        row.load_seconds += load
        row.per_candidate.append(
            f"  {engine:<9} {generator}__{strategy}: {kept} kept from {len(texts)} answers, {tokens} tokens "
            f"({tokens / kept if kept else float('nan'):.1f} per kept example) in {seconds:.1f} s, {cpu:.1f} CPU s "
            f"(+{load:.1f} s loading)"
        )
        print(row.per_candidate[-1], flush=True)
    return row


def run_before(args: argparse.Namespace) -> Row:
    """The ``llamacpp`` row of this benchmark as it was at commit ``args.before``, run by that commit's code in a
    temporary worktree (its own process, its own rose first on the path)."""
    import re
    import subprocess

    with tempfile.TemporaryDirectory(prefix="rose-before-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), args.before],
                       check=True)  # fmt: skip
        config = Path(args.config).resolve()
        if config.is_relative_to(ROOT) and (tree / config.relative_to(ROOT)).is_file():
            config = tree / config.relative_to(ROOT)  # the study as it was at that commit (its batch size, ...)
        try:
            cmd = [sys.executable, str(tree / "benchmarks" / "generation.py"), "--engines", "llamacpp",
                   "--source", args.source, "--config", str(config)]  # fmt: skip
            for key in ("only", "per_label", "max_new_tokens", "batch_size"):
                if getattr(args, key):
                    cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
            env = {**os.environ, "PYTHONPATH": str(tree)}
            print(f"before ({args.before}): {' '.join(cmd[1:])}", flush=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("  llamacpp"):
            print(line.replace("  llamacpp ", "  before   ", 1), flush=True)
    table = [line.split() for line in proc.stdout.splitlines() if re.match(r"llamacpp\s+\d", line)]
    if not table:
        raise SystemExit(f"the benchmark at {args.before} gave no llamacpp row:\n{proc.stdout[-2000:]}"
                         f"{proc.stderr[-2000:]}")  # fmt: skip
    cells = table[-1]  # engine kept answers tokens seconds kept/s tokens/s CPU-s kept/CPU-s load-s [tokens/kept]
    return Row("before", kept=int(cells[1]), answers=int(cells[2]), tokens=int(cells[3]), seconds=float(cells[4]),
               cpu_seconds=float(cells[7]), load_seconds=float(cells[9]))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"), help="a study file (its candidates)")
    p.add_argument("--engines", default=",".join(ENGINES), help=f"a subset of {','.join(ENGINES)}")
    p.add_argument("--only", type=int, default=0, help="the first N candidates only (0: all)")
    p.add_argument("--per-label", type=int, default=0, help="examples per label (0: the study's)")
    p.add_argument("--max-new-tokens", type=int, default=0, help="(0: the study's)")
    p.add_argument("--batch-size", type=int, default=0, help="(0: the study's)")
    p.add_argument("--source", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--target", type=float, default=5.0, help="minimum llamacpp / hf ratio of kept examples per s")
    p.add_argument("--before", default="", metavar="REF",
                   help="also run this benchmark as it was at git commit REF (its llamacpp row), first")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # Both engines use OpenMP. Its default waits (spin a while, then sleep) are the fastest on an idle machine; on
    # one whose cores are busy with other work, spinning slows llama.cpp 10-30x: passive waits for every row then,
    # as the llamacpp backend itself chooses (set OMP_WAIT_POLICY yourself to compare another policy).
    from rose.generate.backends.llamacpp import machine_busy

    if "OMP_WAIT_POLICY" not in os.environ and machine_busy():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from rose.assets import resolve_model
    from rose.pipeline.study import load_study

    hf_logging.set_verbosity_error()
    study = load_study(args.config)
    base = {k.replace("-", "_"): v for k, v in study.generate.items() if k != "backend"}
    base.update(task=study.tasks[0], language=study.languages[0], source=args.source)
    for key in ("per_label", "max_new_tokens", "batch_size"):
        if getattr(args, key):
            base[key] = getattr(args, key)
    candidates = [(c.generator, c.strategy) for c in study.candidates][: args.only or None]
    tokenizers = {g: AutoTokenizer.from_pretrained(resolve_model(g)) for g, _ in candidates}
    engines = [e for e in args.engines.split(",") if e]
    print(
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}, load average {os.getloadavg()[0]:.1f}; "
        f"{len(candidates)} candidate(s) of {args.config}, {base['task']}/{base['language']}, "
        f"{base.get('per_label')} per label, batch {base.get('batch_size')}, "
        f"max {base.get('max_new_tokens')} new tokens",
        flush=True,
    )
    rows = {"before": run_before(args)} if args.before else {}
    rows.update({engine: run_engine(engine, candidates, base, tokenizers) for engine in engines})
    print(
        f"\n{'engine':<10}{'kept':>6}{'answers':>9}{'tokens':>8}{'seconds':>9}{'kept/s':>9}{'tokens/s':>10}"
        f"{'CPU s':>8}{'kept/CPU s':>12}{'load s':>8}{'tokens/kept':>12}"
    )
    for r in rows.values():
        print(
            f"{r.engine:<10}{r.kept:>6}{r.answers:>9}{r.tokens:>8}{r.seconds:>9.1f}{r.kept_per_s:>9.3f}"
            f"{r.tokens_per_s:>10.1f}{r.cpu_seconds:>8.1f}{r.kept_per_cpu_s:>12.3f}{r.load_seconds:>8.1f}"
            f"{r.tokens_per_kept:>12.1f}"
        )
    ok = True
    for a, b in (("llamacpp", "before"), ("llamacpp", "hf"), ("llamacpp", "pipeline"), ("hf", "pipeline")):
        if a in rows and b in rows and rows[b].kept_per_s and rows[b].tokens_per_s:
            kept_ratio = rows[a].kept_per_s / rows[b].kept_per_s
            cpu_ratio = rows[a].kept_per_cpu_s / rows[b].kept_per_cpu_s if rows[b].kept_per_cpu_s else float("nan")
            print(
                f"{a} / {b}: {kept_ratio:.2f}x kept examples/s, {rows[a].tokens_per_s / rows[b].tokens_per_s:.2f}x "
                f"tokens/s, {cpu_ratio:.2f}x kept examples per CPU second"
            )
            if (a, b) == ("llamacpp", "hf"):
                ok = kept_ratio >= args.target
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
