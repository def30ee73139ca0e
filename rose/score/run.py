"""``score(config)``: RoSE and intrinsic metrics from the tracked runs, judged against human test data when there
is some, written as a report on a score run, with the champion classifier in the model registry.

Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143).
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rose import language_id, tasks, tracking
from rose.config import to_params, validate
from rose.errors import RoseError
from rose.generated_data import download_dataset, read_jsonl
from rose.human_data import load_split
from rose.languages import get_language
from rose.locations import SHARED_DATA
from rose.naming import metric_key
from rose.score import champion as champ
from rose.score import label_free, report, tools
from rose.score import pool as pools
from rose.score import selectors as sel
from rose.score.collect import INTRINSIC, TOOL_TAG, Selection, Store, Tracked, collect, fill, missing_message, select
from rose.score.config import ScoreConfig
from rose.score.embeddings import cached, embedder
from rose.score.intrinsic import DIRECTION
from rose.score.models import generator_parameters, load_reference_lm, reference_lm_dtype, reference_lm_languages
from rose.score.report import terminal
from rose.score.tables import CaseTables, build_case, build_groups, dimensions, summary
from rose.score.tools import MEASURED_WITH, measure_dataset
from rose.tasks import Task, get_task, is_task_file

log = logging.getLogger(__name__)
SAMPLES_PER_CANDIDATE = 3


@dataclass
class ScoreResult:
    """What a score run produced: its run id, the tables per case, the judgement over cases and the champions."""

    run_id: str
    cases: list[CaseTables]
    summary: pd.DataFrame
    report: Path
    champions: dict[tuple[str, str], dict] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def leaderboard_text(self) -> str:
        return "\n\n".join(terminal(c) for c in self.cases)


def _cases(config: ScoreConfig, tracked: Store) -> list[tuple[str, str]]:
    explicit = config.task and config.language and "all" not in config.task + config.language
    cases = list(itertools.product(config.task, config.language)) if explicit else [
        (t, lang) for t, lang in tracked.cases()
        if ("all" in config.task or t in config.task) and ("all" in config.language or lang in config.language)
    ]  # fmt: skip
    if not cases:
        raise RoseError(
            f"no finished generate runs in experiment {config.experiment!r} for task(s) "
            f"{','.join(config.task)} and language(s) {','.join(config.language)}: run `rose generate` "
            "for two or more generators or strategies first"
        )
    return cases


def tool_keys(config: ScoreConfig) -> dict[str, str]:
    """What each group of intrinsic metrics (:data:`rose.score.tools.MEASURED_WITH`) is measured with under
    ``config``: a generate run whose ``rose.intrinsic.<group>`` tag differs is measured again."""
    at = {"sample": config.intrinsic_sample, "seed": config.seed}
    return {
        "tokenizer": tools.tool_key(config.tokenizer or tools.WORDS, **at),
        "embedding_model": tools.tool_key(config.embedding_model, **at),
        "reference_lm": tools.tool_key(config.reference_lm, languages=config.reference_lm_languages,
                                       dtype=reference_lm_dtype(config.reference_lm_dtype), **at),
    }


def _tools(config: ScoreConfig):
    keys = tool_keys(config)
    lm = None
    if config.reference_lm:
        try:
            lm = load_reference_lm(config.reference_lm, config.reference_lm_languages,
                                   dtype=reference_lm_dtype(config.reference_lm_dtype))
        except Exception as exc:  # an LM that cannot be loaded offline: perplexity is skipped, said loudly
            log.warning("perplexity skipped: cannot load %s (%s)", config.reference_lm, str(exc).splitlines()[0])
            keys["reference_lm"] = ""
    tokenize = tools.subword_tokenizer(config.tokenizer) if config.tokenizer else tools.intrinsic.simple_tokens
    if tokenize is tools.intrinsic.simple_tokens:  # asked for none, or it could not be loaded: words, said so
        keys["tokenizer"] = tools.tool_key(tools.WORDS, sample=config.intrinsic_sample, seed=config.seed)
    return tools.Tools(
        tokenize=tokenize,
        embed=cached(embedder(config.embedding_model)) if config.embedding_model else None,
        identify=language_id.identify,
        reference_lm=lm,
        keys=keys,
    )


def perplexity_note(config: ScoreConfig, language: str) -> str | None:
    """Why perplexity is not reported for ``language`` (None when it is, or when it is not asked for)."""
    if not config.reference_lm:
        return None
    reads = reference_lm_languages(config.reference_lm, config.reference_lm_languages)
    if language in reads:
        return None
    known = f"reads {', '.join(sorted(reads))}" if reads else "has no known languages"
    return (f"perplexity not available for {language}: the reference LM {config.reference_lm} {known} "
            f"(--reference-lm-languages declares the languages it reads)")  # fmt: skip


class _Datasets:
    """Generate runs' dataset folders, downloaded once per score."""

    def __init__(self):
        self.folders: dict[str, Path] = {}

    def folder(self, run_id: str) -> Path:
        if run_id not in self.folders:
            self.folders[run_id] = download_dataset(run_id).parent
        return self.folders[run_id]

    def rows(self, run_id: str, name: str = "data.jsonl") -> list[dict]:
        path = self.folder(run_id) / name
        return read_jsonl(path) if path.exists() else []

    def demonstrations(self, run_id: str) -> list[str]:
        path = self.folder(run_id) / "demonstrations.json"
        return _strings(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else []


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def dataset_intrinsic(
    texts: list[str],
    language: str,
    generator: str,
    config: ScoreConfig,
    state: dict,
    *,
    demonstrations: list[str] = (),
    verdicts: list[str | None] = (),
    groups: list[str] | None = None,
) -> dict[str, float]:
    """The ``intrinsic/*`` values of one dataset (without the prefix), with the tools ``config`` names (loaded
    once into ``state``); ``groups`` limits the tool-dependent ones (:data:`rose.score.tools.MEASURED_WITH`)."""

    if "tools" not in state:
        state["tools"] = _tools(config)
    values = measure_dataset(
        texts,
        language=language,
        language_lingua=get_language(language).lingua,
        demonstrations=demonstrations,
        verdicts=verdicts,
        tools=state["tools"],
        sample=config.intrinsic_sample,
        seed=config.seed,
        groups=groups,
    )
    params = generator_parameters(generator) if generator else None
    if params:
        values["generator_parameters"] = params
    return values


def measure_intrinsic(case: Tracked, language: str, config: ScoreConfig, datasets: _Datasets, state: dict) -> None:
    """Give every generate run of the case intrinsic metrics measured with ``config``'s tools.

    A group of metrics (:data:`rose.score.tools.MEASURED_WITH`) counts only when the run's ``rose.intrinsic.<group>``
    tag says it was measured with the tools and settings ``config`` names (:func:`tool_keys`); the groups that do
    not match (another reference LM, embedding model, tokenizer, sample or seed; never measured; all of them with
    ``recompute``) are measured again and logged with their tags, or, with ``intrinsic`` off, left out of the case.
    A metric its group's tool could not give this time is logged as NaN, so no value of another tool stays behind.
    """
    import mlflow
    from mlflow.entities import Metric, RunTag

    wanted = tool_keys(config)
    client = mlflow.MlflowClient()
    for i, row in case.generate.iterrows():
        measured = row.get("intrinsic_tools") if isinstance(row.get("intrinsic_tools"), dict) else {}
        stale = [g for g in MEASURED_WITH if config.recompute or measured.get(g) != wanted[g]]
        plain = [k for k in _known() if not any(k in names for names in MEASURED_WITH.values())]
        if not stale and pd.notna(case.generate.loc[i, [k for k in plain if k in case.generate]]).any():
            continue
        if not config.intrinsic:
            _forget(case, i, stale)
            continue
        rows = datasets.rows(row["run_id"])
        verdicts = [r.get("verdict") for r in rows + datasets.rows(row["run_id"], "rejected.jsonl")]
        log.info("intrinsic metrics of %s (%d examples): %s", row["candidate"], len(rows),
                 ", ".join(f"{g} {wanted[g] or 'none'}" for g in stale) or "the tool-free ones")  # fmt: skip
        values = dataset_intrinsic(
            [str(r.get("text", "")) for r in rows],
            language,
            row["generator"],
            config,
            state,
            demonstrations=datasets.demonstrations(row["run_id"]),
            verdicts=verdicts,
            groups=stale,
        )
        if "revision_acceptance" not in values and pd.notna(row.get("revision_acceptance_logged")):
            values["revision_acceptance"] = float(row["revision_acceptance_logged"])
        keys = state["tools"].keys
        for group in stale:  # what the group's tool did not give this time is NaN, not another tool's value
            values.update({k: float("nan") for k in MEASURED_WITH[group] if k not in values})
        now = int(pd.Timestamp.now().timestamp() * 1000)
        client.log_batch(row["run_id"], metrics=[Metric(INTRINSIC + k, float(v), now, 0) for k, v in values.items()],
                         tags=[RunTag(TOOL_TAG + g, keys[g]) for g in stale])  # fmt: skip
        for k, v in values.items():
            case.generate.loc[i, k] = float(v)


def _forget(case: Tracked, i, groups: list[str]) -> None:
    """Leave a run's metrics of ``groups`` (measured with other tools) out of the case."""
    for group in groups:
        for k in MEASURED_WITH[group]:
            if k in case.generate:
                case.generate.loc[i, k] = float("nan")


def _task_digests(store: Store, given: dict[str, str]) -> dict[str, str]:
    """Task name -> content digest of the runs scored (one per name: :func:`rose.score.collect.collect` refuses
    more)."""
    gen = store.generate
    found = dict(zip(gen["task"], gen["task_digest"], strict=True)) if len(gen) else {}
    return {**found, **given}


def _select(config: ScoreConfig, store: Store, task: str, language: str,
            digests: dict[str, str] | None = None) -> tuple[Selection, Store]:  # fmt: skip
    """The case's comparable classifiers and cells; missing cells are computed (``fill_missing``) or named with the
    commands that compute them."""

    def pick(source: Store) -> Selection:
        return select(source.case(task, language), task, language, config.experiment, train_runs=config.train_runs,
                      human_test=config.human_test)  # fmt: skip

    chosen = pick(store)
    if chosen.todo and not config.fill_missing:
        chosen.tracked.messages.append(missing_message(chosen.todo, config.experiment))
    elif chosen.todo:
        notes: list[str] = []
        if fill(chosen.todo, config.experiment, notes):
            store = collect(config.experiment, config.task, config.language, config.candidates, digests)
            chosen = pick(store)
        chosen.tracked.messages.extend(notes)
    return chosen, store


def read_pool(config: ScoreConfig, case: Tracked, task: str, language: str, datasets: _Datasets,
              candidates: list[str]) -> tuple[pools.Pool | None, list[str]]:  # fmt: skip
    """The case's cleaned unlabelled pool (None without ``--unlabelled``) and what the score should say about it:
    the candidates' demonstrations and the human test set's texts are removed from it."""
    if not config.unlabelled:
        return None, []
    notes = []
    task = case_task(case, task)
    texts = pools.read_pool(config.unlabelled, task, language, column=config.unlabelled_column,
                            human_source=pools.human_source(case.human_ref or config.human_test))  # fmt: skip
    runs = case.generate.set_index("candidate")["run_id"].reindex(candidates).dropna()
    shown = [t for run_id in runs for t in datasets.demonstrations(run_id)]
    oracle: list[str] = []
    if case.human_ref:
        try:
            oracle = load_split(task, language, "test", pools.human_source(case.human_ref) or SHARED_DATA).texts
        except RoseError as exc:
            notes.append(f"the human test set ({case.human_ref}) cannot be read, so its texts could not be removed "
                         f"from the unlabelled pool: {exc}")  # fmt: skip
    pool = pools.clean(texts, config.unlabelled, demonstrations=shown, oracle=oracle,
                       max_n=config.unlabelled_sample, seed=config.seed)  # fmt: skip
    if len(pool.texts) < 2:
        notes.append(f"{pool.describe()}: too few texts left for the target-text selectors")
        return None, notes
    return pool, notes


def case_task(case: Tracked, name: str) -> Task:
    """The task a case's runs were made for (rebuilt from its first generate run's ``task.yaml``)."""
    import mlflow

    digest = next((d for d in case.generate.get("task_digest", []) if isinstance(d, str) and d), "")
    known = tasks.by_digest(digest) if digest else None
    if known is not None:
        return known
    if len(case.generate):
        return tasks.from_run(mlflow.MlflowClient().get_run(case.generate["run_id"].iloc[0]))
    return get_task(name)


def measure_label_free(config: ScoreConfig, case: Tracked, task: str, language: str, candidates: list[str],
                       datasets: _Datasets, state: dict) -> label_free.LabelFree:  # fmt: skip
    """The label-free selectors of a case (:mod:`rose.score.label_free`), with the tools loaded once into
    ``state`` (the embedder, cached by text, is the intrinsic metrics' own)."""
    if "tools" not in state:
        state["tools"] = _tools(config)
    pool, notes = read_pool(config, case, task, language, datasets, candidates)
    runs = case.generate.set_index("candidate")["run_id"]
    data = {}
    for name in candidates:
        rows = datasets.rows(runs[name])
        seeds = case.seeds[case.seeds["candidate"] == name]
        data[name] = label_free.CandidateData([str(r.get("text", "")) for r in rows],
                                              [str(r.get("label", "")) for r in rows],
                                              dict(zip(seeds["seed"].astype(int), seeds["run_id"], strict=True)))  # fmt: skip
    free = label_free.compute(data, list(case_task(case, task).labels), embed=state["tools"].embed, pool=pool,
                              load_model=label_free.load_seed_model, dev_split=label_free.seed_dev_split,
                              seed=config.seed)  # fmt: skip
    free.pool_notes = notes
    return free


def probe_sentence(task: str, language: str, free: label_free.LabelFree) -> str:
    """How far rose_probe (seconds) agrees with fine-tuned RoSE (minutes to hours) on the case's candidates."""
    cost = free.seconds.get("embedding", 0.0) + free.seconds.get("rose_probe", 0.0)
    if np.isnan(free.probe_vs_rose):
        agree = "its rank agreement with fine-tuned RoSE needs three or more candidates with both scores"
    else:
        agree = f"it ranks the candidates like fine-tuned RoSE with Spearman {free.probe_vs_rose:.2f}"
    return f"{task}/{language}: rose_probe (logistic-regression probes on frozen embeddings) took {cost:.1f} s; {agree}"


def _known() -> set[str]:
    return set(DIRECTION)


def score(config: ScoreConfig, *, digest: str | None = None) -> ScoreResult:
    """Score the query's cases and log a score run; see the module docstring.

    With ``digest`` (a pipeline's score unit, which covers every run it reads), the score run is claimed through
    the lease like generate runs and train parents: a finished score run with that digest is returned as it is,
    and a live one is waited for, so one score run exists per digest. Raises RoseError naming what is missing
    (generate runs, train runs) and the command that produces it.
    """
    validate(config)
    tracking.setup(config.experiment, create=False)  # an unknown experiment is a mistake, not a new study
    given = {t: get_task(t) for t in config.task if t != "all" and is_task_file(t)}  # task files: by content
    digests = {task.name: task.digest for task in given.values()}
    config = replace(config, task=[given[t].name if t in given else t for t in config.task])
    if digest is None:
        return _score(config, digests, None, None)
    name = tracking.run_name("score", f"{','.join(config.task)}/{','.join(config.language)}")
    run_tags = tracking.tags("score", ",".join(config.task), ",".join(config.language), digest=digest)
    claim = tracking.claim(config.experiment, "score", digest, run_tags, name)
    if claim.finished is not None:
        log.info("an identical finished score run exists (%s); not scoring again", claim.finished.info.run_id)
        return _reused(claim.finished)
    try:
        return _score(config, digests, digest, claim)
    except BaseException as exc:
        _give_up(claim, exc)
        raise


def _reused(run) -> ScoreResult:
    return ScoreResult(run.info.run_id, [], pd.DataFrame(), Path())


def _give_up(claim, exc: BaseException) -> None:
    """A claimed score run that failed before it was opened ends FAILED (KILLED on Ctrl-C), its lease freed."""
    import mlflow

    try:
        if mlflow.MlflowClient().get_run(claim.run_id).info.status == "RUNNING":
            tracking.record_error(claim.run_id, exc)
            mlflow.MlflowClient().set_terminated(claim.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt)
                                                 else "FAILED")  # fmt: skip
    finally:
        claim.lease.release()


def _score(config: ScoreConfig, digests: dict[str, str], digest: str | None, claim) -> ScoreResult:
    """The scoring itself, into the claimed run (``claim``) or a new one (``digest`` None: the config's)."""
    import mlflow

    store = collect(config.experiment, config.task, config.language, config.candidates, digests)
    cases, messages, state, datasets = [], [], {}, _Datasets()
    pool_digests: dict[str, str] = {}
    wanted = _cases(config, store)
    for task, language in wanted:
        try:
            chosen, store = _select(config, store, task, language, digests)
        except RoseError as exc:
            if len(wanted) == 1:
                raise
            messages.append(str(exc))
            continue
        case = chosen.tracked
        if config.intrinsic:
            measure_intrinsic(case, language, config, datasets, state)
        ready = chosen.ready
        note = perplexity_note(config, language)
        if config.intrinsic and not get_language(language).lingua:
            messages.append(f"language ID not available for {language}: lingua does not cover it, so no "
                            "target-language share is measured")  # fmt: skip
        if note and "perplexity" in case.generate:  # e.g. logged by an older score under an LM that cannot read it
            case.generate["perplexity"] = float("nan")
        free = measure_label_free(config, case, task, language, ready, datasets, state) if config.selectors else None
        within = free.within if free else None
        cases.append(build_case(case, task, language, ready, bootstrap=config.bootstrap, seed=config.seed,
                                selectors=within))  # fmt: skip
        if free is not None:
            cases[-1].label_free = free
            if free.pool is not None:
                pool_digests[f"{task}/{language}"] = free.pool.digest
            rose_scores = cases[-1].rose.set_index("candidate")["rose"]
            free.probe_vs_rose = sel.rank_agreement(free.values["rose_probe"].to_dict(), rose_scores.to_dict())
            case.messages.extend(free.notes())
            case.messages.append(probe_sentence(task, language, free))
        cases.extend(build_groups(case, task, language, ready, config.group_by, bootstrap=config.bootstrap,
                                  seed=config.seed, selectors=within))  # fmt: skip
        messages.extend(m for m in [*case.messages, note] if m and m not in messages)
    state.clear()  # the reference LM, the embedder and the tokenizer: not needed for the report and the champion
    if not cases:
        raise RoseError("nothing to score: " + "; ".join(messages))
    for m in messages:
        log.warning("%s", m)
    judged = summary(cases)
    pools = [c for c in cases if not c.dimension]
    samples = {
        (c.task, c.language, row.candidate): datasets.rows(row.run_id)[:SAMPLES_PER_CANDIDATE]
        for c in cases for row in c.generate.itertuples() if row.candidate in c.candidates
    }  # fmt: skip
    folder = Path(config.output_dir) if config.output_dir else Path(tempfile.mkdtemp(prefix="rose-score-"))
    grouped = {d: summary(cases, d) for d in dimensions(config.group_by)}
    page = report.write(folder, cases, judged, samples, messages, grouped)
    champions = {c.task + "/" + c.language: c.champion for c in pools}
    scored = _task_digests(store, digests)
    run_tags = tracking.tags(
        "score",
        ",".join(config.task),
        ",".join(config.language),
        task_digest=next(iter(scored.values())) if len(scored) == 1 else None,
        champion=";".join(f"{k}={v}" for k, v in champions.items()) if len(pools) > 1 else pools[0].champion,
        digest=digest
        or tracking.digest(
            {**to_params(config), "task_digests": scored}
            | ({"unlabelled_content": pool_digests} if config.unlabelled else {})
        ),  # fmt: skip
    )
    result = ScoreResult("", cases, judged, page, messages=messages)
    name = tracking.run_name("score", f"{','.join(config.task)}/{','.join(config.language)}")
    with tracking.run(name, run_tags, params=to_params(config), run_id=claim and claim.run_id,
                      lease=claim and claim.lease) as active:  # fmt: skip
        result.run_id = active.info.run_id
        mlflow.set_tags(run_tags)  # a claimed run was opened with the claim's tags only
        _log_metrics(cases, judged, grouped)
        mlflow.set_tags(selector_tags(pools))
        mlflow.log_artifacts(str(folder), artifact_path="report")
        mlflow.log_text(result.leaderboard_text(), "report/leaderboard.txt")
        mlflow.set_tag("mlflow.note.content", "\n\n".join(report.description(c) for c in cases))
        if config.register_champion:
            for c in pools:  # a champion per task and language, from the whole pool
                if c.champion:
                    result.champions[(c.task, c.language)] = _register(c, config, result.run_id)
    return result


def selector_tags(cases: list[CaseTables]) -> dict[str, str]:
    """``rose.selector.[<task>.<language>.]<name>``: ``available`` or ``not available: <why>`` for every selector."""
    several = len(cases) > 1
    out = {}
    for c in cases:
        free = c.label_free
        if free is None:
            continue
        where = f"{c.task}.{c.language}." if several else ""
        for name in free.values.columns:
            why = free.reasons.get(name)
            state = "available" if free.values[name].notna().any() else "not available"
            out[f"rose.selector.{where}{name}"] = (f"{state}: {why}" if why else state)[:500]
    return out


def _register(case: CaseTables, config: ScoreConfig, score_run_id: str) -> dict:
    """Register the case's champion (its best seed, alias ``champion``, with why it was chosen as the version's
    description) and the runner-up's best seed (alias ``challenger``)."""
    import mlflow

    name = config.model_name.format(task=case.task, language=case.language)
    versions = {}
    ranked = case.leaderboard.dropna(subset=["rose"])["candidate"]
    runner_up = [c for c in ranked if c != case.champion][:1]
    for alias, candidate in ((champ.ALIAS, case.champion), *((champ.CHALLENGER, c) for c in runner_up)):
        seed = champ.best_seed(case.seeds, candidate)
        dev = float(seed["dev_f1"]) if pd.notna(seed.get("dev_f1")) else None
        why = report.champion_description(case, int(seed["seed"]), dev) if alias == champ.ALIAS else (
            f"Runner-up by RoSE for {case.task}/{case.language}, behind {case.champion}: {candidate}, its seed "
            f"{int(seed['seed'])}. See the champion's description for the scores.")  # fmt: skip
        tags = {"rose.candidate": candidate, "rose.seed": str(seed["seed"]), "rose.task": case.task,
                "rose.language": case.language, "rose.score_run_id": score_run_id}  # fmt: skip
        try:
            versions[alias] = champ.register(seed["run_id"], name, tags, alias=alias, description=why)
        except Exception as exc:  # the runner-up's model cannot be registered: the champion still is
            if alias == champ.ALIAS:
                raise
            log.warning("no %s for %s: %s's model was not registered (%s)", alias, name, candidate,
                        str(exc).splitlines()[0][:200])  # fmt: skip
            continue
        mlflow.set_tag(f"rose.{alias}_model.{case.task}.{case.language}", f"models:/{name}@{alias}")
    seed = champ.best_seed(case.seeds, case.champion)
    return {"candidate": case.champion, "model": name, "version": str(versions[champ.ALIAS].version),
            "run_id": seed["run_id"], "challenger": runner_up[0] if runner_up else None}  # fmt: skip


def _log_metrics(cases: list[CaseTables], judged: pd.DataFrame, grouped: dict[str, pd.DataFrame]) -> None:
    import mlflow

    values = metric_values(cases, judged, grouped)
    if values:
        mlflow.log_metrics(values)


def metric_values(
    cases: list[CaseTables], judged: pd.DataFrame, grouped: dict[str, pd.DataFrame] | None = None
) -> dict[str, float]:
    """The score run's metrics: ``rose/[<group>/]<candidate>`` and ``selection/[<group>/]<metric>/<k>``
    (``<group>`` = ``strategy/<name>`` or ``generator/<name>``), with ``<task>/<language>/`` in front when there
    are several; ``summary/<metric>/<k>`` over several cases' pools and ``summary/<dimension>/<metric>/<k>`` over
    every group of a dimension; the label-free selectors of each pool: ``selector/<name>/<candidate>`` (available
    values only), ``selector_time/<name>_s`` (seconds; ``embedding`` for the shared passes),
    ``selector/rose_probe_vs_rose_spearman`` and ``pool/texts``, ``pool/removed_demonstrations``,
    ``pool/removed_oracle``."""

    values = {}
    several = len({(c.task, c.language) for c in cases}) > 1
    for c in cases:
        prefix = f"{c.task}/{c.language}/" if several else ""
        group = f"/{c.key}" if c.key else ""
        for r in c.rose.itertuples():
            if pd.notna(r.rose):
                values[metric_key(f"{prefix}rose{group}", r.candidate)] = r.rose
        for r in c.judged.itertuples():
            for k in ("top1", "regret", "spearman", "kendall"):
                if pd.notna(getattr(r, k)):
                    values[metric_key(f"{prefix}selection{group}", r.metric, k)] = getattr(r, k)
        free = c.label_free
        if free is not None and not c.dimension:
            for name in free.values.columns:
                for cand, value in free.values[name].dropna().items():
                    values[metric_key(f"{prefix}selector", name, cand)] = value
            for name, seconds in free.seconds.items():
                values[f"{prefix}selector_time/{name}_s"] = seconds
            if pd.notna(free.probe_vs_rose):
                values[f"{prefix}selector/rose_probe_vs_rose_spearman"] = free.probe_vs_rose
            if free.pool is not None:
                values.update({f"{prefix}pool/texts": len(free.pool.texts), f"{prefix}pool/read": free.pool.read,
                               f"{prefix}pool/removed_demonstrations": free.pool.demonstrations,
                               f"{prefix}pool/removed_oracle": free.pool.oracle})  # fmt: skip
    several_pools = sum(not c.dimension for c in cases) > 1
    tables = [("summary", judged)] if several_pools else []
    tables += [(f"summary/{d}", t) for d, t in (grouped or {}).items()]
    for head, table in tables:
        for r in table.itertuples():
            for k in ("top1_rate", "mean_regret", "spearman", "kendall", "pearson"):
                if pd.notna(getattr(r, k)):
                    values[metric_key(head, r.metric, k)] = getattr(r, k)
    return {k: float(v) for k, v in values.items()}
