"""``generate(config)``: run a strategy for one candidate, task and language, as one tracked MLflow run.

Every request goes through the on-disk completion cache, so a run killed at any point and started again with
the same arguments re-asks nothing it already has and, with a deterministic backend, writes the same dataset as
an uninterrupted run. A finished run with the same configuration digest is returned instead of generating again.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from rose import generated_data, tasks, tracking
from rose.config import to_params, validate
from rose.errors import RoseError
from rose.generate.backends import Backend, get_backend, resolve_backend
from rose.generate.cache import CompletionCache
from rose.generate.config import NOT_IN_DIGEST, GenerateConfig
from rose.generate.context import Context
from rose.generate.identity import by_content, file_params, steps_by_content
from rose.generate.parse import length_limits
from rose.generate.steps import State, read_descriptions
from rose.generate.strategies import Strategy, get_strategy
from rose.human_data import columns, load_split
from rose.languages import get_language
from rose.locations import project_dir
from rose.naming import candidate_name, metric_key
from rose.tasks import get_task

log = logging.getLogger(__name__)


@dataclass
class GenerateResult:
    run_id: str
    dataset_path: Path
    candidate: str
    kept: dict[str, int]
    shortfall: dict[str, int]
    metrics: dict[str, float] = field(default_factory=dict)
    reused: bool = False  # an identical finished run was found


def config_digest(config: GenerateConfig, strategy: Strategy) -> str:
    """The digest of what determines a dataset: the config minus secrets, paths and speed knobs, plus the steps,
    the task's content (never its name or path alone) and the language's code and name."""
    params = by_content({k: v for k, v in to_params(config).items() if k not in NOT_IN_DIGEST})
    params["task"] = get_task(config.task).digest
    params["language"] = language_of(config).to_dict()
    return tracking.digest({**params, "steps": steps_by_content(strategy.specs)})


def language_of(config: GenerateConfig):
    """The target language, named by ``--language-name`` when given."""
    return get_language(config.language, config.language_name or None)


def _limits(config: GenerateConfig, task, language) -> tuple[int | None, int | None]:
    if config.min_chars is not None and config.max_chars is not None:
        return config.min_chars, config.max_chars
    for code in dict.fromkeys((language.code, config.pivot_language)):
        try:
            lo, hi = length_limits(load_split(task, code, "train", config.source, **columns(config)).texts)
            break
        except RoseError:
            continue
    else:
        lo, hi = 1, 10_000
    return (
        config.min_chars if config.min_chars is not None else lo,
        config.max_chars if config.max_chars is not None else hi,
    )


def make_context(
    config: GenerateConfig,
    backend: Backend,
    cache: CompletionCache,
    strategy: Strategy,
    summary_backend: Backend | None = None,
) -> Context:
    """The context steps run in: loads the backend, picks chat or completion prompts, sets length limits."""
    task, language = get_task(config.task), language_of(config)
    backend.load()
    chat = {"chat": True, "completion": False}.get(config.prompt_format)
    ctx = Context(
        config,
        task,
        language,
        backend,
        cache,
        config.generator,
        strategy.name,
        candidate_name(config.generator, strategy.name),
        chat=backend.is_chat if chat is None else chat,
        summary_backend=summary_backend,
        pivot=get_language(config.pivot_language),
    )
    ctx.min_chars, ctx.max_chars = _limits(config, task, language)
    ctx.descriptions = fixed_descriptions(config, task)
    return ctx


def fixed_descriptions(config: GenerateConfig, task) -> dict[str, str]:
    """The ``--descriptions`` file's descriptions (every label must have one), else the task file's."""
    if config.descriptions:
        return read_descriptions(config.descriptions, list(task.labels), config.descriptions_key)
    return {label: task.description_of(label) for label in task.labels}


def run_strategy(
    config: GenerateConfig,
    backend: Backend,
    cache: CompletionCache,
    strategy: Strategy | None = None,
    summary_backend: Backend | None = None,
    progress: bool = False,
) -> tuple[State, Context]:
    """Run a strategy's steps with no tracking; returns the final state and the context (with its counters)."""
    strategy = strategy or get_strategy(config.strategy)
    ctx = make_context(config, backend, cache, strategy, summary_backend)
    return run_steps(strategy, ctx, progress), ctx


def check_steps(strategy: Strategy, ctx: Context) -> list:
    """The strategy's steps, after each has read what it needs (data, descriptions): input errors show here."""
    steps = strategy.build(ctx.config.language_filter)
    for step in steps:
        while step is not None:
            if hasattr(step, "check"):
                step.check(ctx)
            step = getattr(step, "inner", None)
    return steps


def run_steps(strategy: Strategy, ctx: Context, progress: bool = False) -> State:
    """Run a strategy's steps in a context made by :func:`make_context`; returns the final state."""
    config = ctx.config
    steps = strategy.build(config.language_filter)
    state = State(labels=list(ctx.task.labels))
    ctx.progress = _progress(config, ctx.task, ctx.candidate) if progress else None
    started = time.perf_counter()
    try:
        for step in steps:
            state = step(state, ctx)
    finally:
        if ctx.progress is not None:
            ctx.progress.close()
    ctx.stats["wall_seconds"] += time.perf_counter() - started
    return state


def generate(config: GenerateConfig, backend: Backend | None = None) -> GenerateResult:
    """Generate a dataset for ``config`` (with ``backend``, else the one the config names) and track it."""
    import mlflow

    validate(config)
    if config.backend == "auto":  # the backend picked is part of what determines the data (and the digest)
        config = replace(config, backend=resolve_backend(config.backend, config.generator))
    task, language = get_task(config.task), language_of(config)
    strategy = get_strategy(config.strategy)
    strategy.build(config.language_filter)  # a bad strategy fails before anything starts
    fixed_descriptions(config, task)  # so does a descriptions file that misses a label
    candidate = candidate_name(config.generator, strategy.name)
    digest = config_digest(config, strategy)
    tracking.setup(config.experiment)
    if config.resume and (done := tracking.find_finished(config.experiment, "generate", digest)):
        log.info("%s: an identical finished run exists (%s); not generating again", candidate, done.info.run_id)
        return _reused(done, candidate)

    own = backend is None
    summary_backend = None
    home = project_dir() / ".rose"
    cache = None
    try:
        backend = backend or get_backend(config.backend, config)
        if config.summary_model and config.summary_model != config.generator:
            summary_backend = get_backend(config.backend, config, model=config.summary_model)
        cache = CompletionCache(Path(config.cache_dir or home / "cache") / "completions.sqlite")
        # every input is read before a run exists: a bad one leaves no run behind
        ctx = make_context(config, backend, cache, strategy, summary_backend)
        for used in (backend, summary_backend):
            if hasattr(used, "check"):  # a server backend: is it there?
                used.check()
        check_steps(strategy, ctx)
        out_dir = Path(config.output_dir or home / "generate" / candidate / f"{task.name}-{language.code}-{digest[:8]}")
        run_tags = tracking.tags(
            "generate",
            task,
            language.code,
            candidate=candidate,
            generator=config.generator,
            strategy=strategy.name,
            backend=backend.name,
            digest=digest,
            descriptions=strategy.descriptions_source(config),
        )
        name = tracking.run_name("generate", candidate)
        claim = (
            tracking.claim(config.experiment, "generate", digest, run_tags, name)
            if config.resume
            else tracking.claim_new(config.experiment, run_tags, name)
        )
        if claim.finished is not None:
            log.info("%s: another process generated this configuration (%s); reusing it", candidate,
                     claim.finished.info.run_id)  # fmt: skip
            return _reused(claim.finished, candidate)
        started = time.perf_counter()
        with tracking.run(name, run_tags, run_id=claim.run_id, lease=claim.lease) as run:
            if claim.adopted:
                log.info("%s: continuing unfinished run %s", candidate, claim.run_id)
            _log_params(config, strategy)
            state = run_steps(strategy, ctx, progress=True)
            metrics = _metrics(state, ctx, time.perf_counter() - started)
            used = strategy.descriptions_source(config) != "none"
            path = _write(out_dir, state, ctx, used)
            mlflow.log_metrics(metrics)
            mlflow.set_tag("mlflow.note.content", description(config, strategy, backend, state))
            mlflow.log_artifacts(str(out_dir), generated_data.ARTIFACT_DIR)
            generated_data.log_input(path, candidate)
            run_id = run.info.run_id
    finally:
        if cache is not None:
            cache.close()
        if own and backend is not None:
            backend.close()
        if summary_backend is not None:
            summary_backend.close()
    kept = state.kept()
    log.info(
        "%s: kept %d examples (%s), shortfall %d",
        candidate,
        sum(kept.values()),
        ", ".join(f"{k}={v}" for k, v in kept.items()),
        sum(state.shortfall.values()),
    )
    return GenerateResult(run_id, path, candidate, kept, dict(state.shortfall), metrics)


def description(config: GenerateConfig, strategy: Strategy, backend: Backend, state: State) -> str:
    """A generate run's description: its generator, strategy, what it kept and what it fell short of."""
    kept, short = state.kept(), {k: v for k, v in state.shortfall.items() if v}
    lines = [f"{config.generator} ({backend.name} backend), strategy {strategy.name}: asked {config.per_label} "
             f"examples per label, kept {sum(kept.values())} ("
             + ", ".join(f"{label} {n}" for label, n in kept.items()) + ")."]  # fmt: skip
    lines.append("Shortfall: " + (", ".join(f"{label} {n}" for label, n in short.items()) + "." if short else "none."))
    return "\n\n".join(lines)


def _reused(run, candidate: str) -> GenerateResult:
    path, counts = generated_data.reused_dataset(run, tasks.from_run(run).labels)
    return GenerateResult(run.info.run_id, path, candidate, counts["kept"], counts["shortfall"],
                          dict(run.data.metrics), reused=True)  # fmt: skip


def _log_params(config: GenerateConfig, strategy: Strategy) -> None:
    params = to_params(config)
    params.update(strategy_name=strategy.name, strategy_steps=json.dumps(strategy.specs), **file_params(params))
    try:
        tracking.log_params(params)
    except Exception as exc:  # a resumed run whose output paths changed keeps its first values
        log.warning("params not logged again: %s", str(exc).splitlines()[0])


def _progress(config: GenerateConfig, task, candidate: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    total = len(task.labels) * math.ceil(config.per_label / max(1, config.examples_per_request))
    return tqdm(total=total, desc=candidate, unit="req", file=sys.stderr, dynamic_ncols=True, leave=False)


def _metrics(state: State, ctx: Context, wall: float) -> dict[str, float]:
    s = ctx.stats
    kept = state.kept()
    m: dict[str, float] = {}
    for label in state.labels:
        m[metric_key("kept", label=label)] = kept[label]
        m[metric_key("shortfall", label=label)] = state.shortfall.get(label, 0)
        if state.language_share:  # empty: language ID is not available for the language
            m[metric_key("target_language_share", label=label)] = state.language_share.get(label, 0.0)
        if label in state.demos_used:
            m[metric_key("demos_used", label=label)] = state.demos_used[label]
    m.update(dropped_metrics(ctx.dropped))
    judged = s["revision_judged"]
    m.update(
        kept_total=sum(kept.values()), shortfall_total=sum(state.shortfall.values()),
        duplicates_dropped=s["duplicates_dropped"], parse_dropped=s["parse_dropped"],
        cross_label_dropped=s["cross_label_dropped"],
        length_dropped=s["length_dropped"], empty_answers=s["empty_answers"],
        revision_rejected=s["revision_rejected"], revision_unparsed=s["revision_unparsed"],
        language_dropped=s["language_dropped"],
        tokens_generated=s["tokens_generated"], requests=s["requests"], requests_cached=s["requests_cached"],
        tokens_per_second=s["tokens_generated"] / s["generation_seconds"] if s["generation_seconds"] else 0.0,
        tokens_per_kept=s["tokens_generated"] / sum(kept.values()) if sum(kept.values()) else 0.0,
        requests_skipped=s["requests_skipped"], answers_ended_long_line=s["answers_ended_long_line"],
        wall_time_s=wall,
    )  # fmt: skip
    if state.language_share:
        m["target_language_share"] = state.language_share.get("", 0.0)
    if judged:
        m["revision_acceptance"] = s["revision_accepted"] / judged
    return {k: float(v) for k, v in m.items()}


def dropped_metrics(dropped) -> dict[str, float]:
    """``dropped/<reason>/<label>``, ``dropped/<reason>`` and ``dropped_total`` from (reason, label) counts."""
    m: dict[str, float] = {"dropped_total": float(sum(dropped.values()))}
    for (reason, label), n in sorted(dropped.items()):
        m[metric_key("dropped", reason, label=label)] = float(n)
        m[f"dropped/{reason}"] = m.get(f"dropped/{reason}", 0.0) + n
    return m


def _write(out_dir: Path, state: State, ctx: Context, descriptions_used: bool = True) -> Path:
    """The dataset folder: data (jsonl, parquet), rejected examples, demonstrations, descriptions, prompts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [{k: ex.get(k) for k in generated_data.EXAMPLE_FIELDS} for ex in state.examples]
    path = generated_data.write_jsonl(rows, out_dir / generated_data.DATA_FILE)
    generated_data.write_parquet(rows, out_dir / generated_data.PARQUET_FILE)
    generated_data.write_jsonl(
        [{k: v for k, v in ex.items() if not k.startswith("_")} for ex in state.rejected],
        out_dir / generated_data.REJECTED_FILE,
    )
    generated_data.write_jsonl(list(state.prompts.values()), out_dir / generated_data.PROMPTS_FILE)
    demos = {"language": state.demo_language, "demonstrations": state.demonstrations, "demos_used": state.demos_used}
    (out_dir / generated_data.DEMOS_FILE).write_text(json.dumps(demos, ensure_ascii=False, indent=1), encoding="utf-8")
    with (out_dir / generated_data.DESCRIPTIONS_FILE).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["label", "description"])
        writer.writerows(
            (label, (ctx.description(state.descriptions, label) if descriptions_used else "") or "")
            for label in state.labels
        )
    return path
