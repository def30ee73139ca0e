"""The pre-race: rank a study's candidates by ``rose_probe`` once their data exists, and fine-tune only the best.

```yaml
pre_race: {keep: 3}             # fine-tune the best 3 candidates by rose_probe (per task and language)
pre_race: {margin: 0.05}        # ... or those within 0.05 macro-F1 of the best
pre_race: {keep: 3, margin: 0.05, encoder: multilingual-e5-small}   # both: at most 3, and within the margin
```
Off by default. ``rose_probe`` is RoSE's round robin with logistic-regression probes on frozen encoder embeddings
(:func:`rose.score.selectors.probe_matrix`): seconds per case against minutes to hours of fine-tuning. Until every
candidate's data is generated, no candidate is dropped (the plan says so); then the dropped candidates get no
training, no cells and no place in the score, and the log and the plan's notes name them with their
``rose_probe`` and the rule that dropped them. A ranking is computed once per set of datasets and kept for the
process (the plan is rebuilt before each stage); each text is embedded once (:func:`rose.score.embeddings.cached`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rose.errors import RoseError

log = logging.getLogger(__name__)

KEYS = ("keep", "margin", "encoder")


@dataclass(frozen=True)
class PreRace:
    keep: int = 0  # the best this many (0: no count limit)
    margin: float | None = None  # and/or those within this much rose_probe of the best
    encoder: str = ""  # the frozen encoder (default: the score's embedding model, else multilingual-e5-small)


def parse(value: Any, at: str) -> PreRace | None:
    """A study's ``pre_race:`` mapping (None when absent or empty); RoseError naming ``at`` otherwise."""
    if value in (None, {}, False):
        return None
    if not isinstance(value, dict):
        raise RoseError(f"{at}: pre_race is a mapping, e.g. {{keep: 3}} or {{margin: 0.05}}")
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise RoseError(f"{at}: pre_race: unknown setting {unknown[0]!r}: use {', '.join(KEYS)}")
    keep, margin = value.get("keep", 0), value.get("margin")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise RoseError(f"{at}: pre_race: keep is a whole number of candidates (1 or more), not {keep!r}")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0):
        raise RoseError(f"{at}: pre_race: margin is a macro-F1 difference of 0 or more (e.g. 0.05), not {margin!r}")
    if not keep and margin is None:
        raise RoseError(f"{at}: pre_race needs keep (the best K candidates) or margin (within this of the best)")
    return PreRace(keep, None if margin is None else float(margin), str(value.get("encoder") or ""))


def choose(scores: dict[str, float], rule: PreRace) -> tuple[list[str], dict[str, str]]:
    """(the candidates kept, best first; why each other one was dropped) by ``rose_probe`` ``scores``."""
    ranked = sorted(scores, key=lambda n: (-scores[n], n))
    best = scores[ranked[0]]
    kept, dropped = [], {}
    for i, name in enumerate(ranked):
        if rule.keep and i >= rule.keep:
            dropped[name] = f"rose_probe {scores[name]:.3f}, not among the best {rule.keep}"
        elif rule.margin is not None and best - scores[name] > rule.margin + 1e-12:
            dropped[name] = f"rose_probe {scores[name]:.3f}, more than {rule.margin:g} below the best ({best:.3f})"
        else:
            kept.append(name)
    return kept, dropped


_RANKED: dict[tuple, tuple[dict[str, float], float]] = {}  # (encoder, task, language, run ids, seeds) -> scores
_EMBEDDERS: dict[str, Any] = {}


def rank(encoder: str, task: str, language: str, run_ids: dict[str, str], seeds: list[int]) -> dict[str, float]:
    """``rose_probe`` of each candidate (name -> generate run id), once per set of datasets in this process."""
    import time

    from rose.generated_data import load_ref
    from rose.score import selectors
    from rose.score.embeddings import cached, embedder
    from rose.tasks import get_task

    key = (encoder, task, language, tuple(sorted(run_ids.items())), tuple(seeds))
    if key not in _RANKED:
        start = time.perf_counter()
        if encoder not in _EMBEDDERS:
            _EMBEDDERS[encoder] = cached(embedder(encoder))
        embed = _EMBEDDERS[encoder]
        data = {name: load_ref(run_id, task, language, strict_labels=False) for name, run_id in run_ids.items()}
        labels = list(get_task(task).labels)
        counts = [d.labels.count(lab) for d in data.values() for lab in labels]
        per_label = min([n for n in counts if n > 0], default=None)
        matrix = selectors.probe_matrix({n: embed(d.texts) for n, d in data.items()},
                                        {n: d.labels for n, d in data.items()}, labels, seeds=seeds or [0],
                                        per_label=per_label)  # fmt: skip
        _RANKED[key] = (selectors.rose_probe(matrix), time.perf_counter() - start)
    return _RANKED[key][0]


def seconds(encoder: str, task: str, language: str, run_ids: dict[str, str], seeds: list[int]) -> float:
    key = (encoder, task, language, tuple(sorted(run_ids.items())), tuple(seeds))
    return _RANKED.get(key, ({}, 0.0))[1]


_SAID: set[tuple] = set()


def kept(rule: PreRace | None, task: str, language: str, run_ids: dict[str, str | None], *, encoder: str,
         seeds: list[int], notes: list[str]) -> list[str]:  # fmt: skip
    """The candidates of a case to fine-tune: all without a pre-race, or while some data is still to generate;
    else the ones :func:`choose` keeps. ``notes`` gets what the plan should say; the first time a ranking is made,
    the log says which candidates were dropped and why."""
    names = list(run_ids)
    if rule is None or len(names) < 2:
        return names
    pending = [n for n, r in run_ids.items() if not r]
    if pending:
        notes.append(f"{task}/{language}: the pre-race ranks the candidates by rose_probe once "
                     f"{', '.join(pending)} {'is' if len(pending) == 1 else 'are'} generated; until then every "
                     "candidate is planned")  # fmt: skip
        return names
    done = {n: str(r) for n, r in run_ids.items()}
    scores = rank(rule.encoder or encoder, task, language, done, seeds)
    chosen, dropped = choose(scores, rule)
    took = seconds(rule.encoder or encoder, task, language, done, seeds)
    line = (
        f"{task}/{language}: pre-race by rose_probe ({took:.1f} s): fine-tuning "
        + ", ".join(f"{n} ({scores[n]:.3f})" for n in chosen)
        + ("; dropped " + "; ".join(f"{n} ({why})" for n, why in dropped.items()) if dropped else "; none dropped")
    )
    notes.append(line)
    said = (task, language, tuple(sorted(done.items())), rule)
    if said not in _SAID:
        _SAID.add(said)
        log.warning("%s", line)
    return [n for n in names if n in chosen]
