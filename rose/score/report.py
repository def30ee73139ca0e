"""Report files of a score run: CSV and markdown tables, a heatmap, scatter plots, one self-contained HTML page,
and the leaderboard as terminal text.

Every string that comes from data (candidate names, labels, generated examples, messages) goes through
:func:`html.escape` before it enters the HTML page; images are inlined as base64 data URIs.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import pandas as pd

from rose.score import spread
from rose.score.tables import CaseTables

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.t,th.t{text-align:left}img{max-width:100%}.msg{color:#a40}li{margin:.2em 0}"""


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e5 else f"{value:.{digits}f}"
    return str(value)


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A GitHub markdown table (pipes in cells escaped)."""
    frame = df.reset_index() if index else df
    cells = [[fmt(v).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells]) + "\n"


def to_html_table(df: pd.DataFrame, index: bool = False) -> str:
    """An HTML table with every header and cell escaped."""
    frame = df.reset_index() if index else df
    head = "".join(f'<th class="t">{html.escape(str(c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f'<td{"" if isinstance(v, (int, float)) else " class=t"}>{html.escape(fmt(v))}</td>'
                         for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def terminal(case: CaseTables) -> str:
    """The leaderboard as aligned text for the terminal."""
    return "\n".join([*table_lines(case), *baseline_line(case), *spread_lines(case)])


def table_lines(case: CaseTables) -> list[str]:
    """The leaderboard's title and aligned rows."""
    cols = [c for c in ("candidate", "rose", "ci_low", "ci_high", "n_seeds", "human_f1", "gap_to_human")
            if c in case.leaderboard]  # fmt: skip
    rows = [[fmt(v) for v in r] for r in case.leaderboard[cols].itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]

    def line(cells):
        return "  ".join(
            f"{x:<{w}}" if i == 0 else f"{x:>{w}}" for i, (x, w) in enumerate(zip(cells, widths, strict=True))
        )

    where = f"task {case.task}, language {case.language}" + (
        f", {case.dimension} {case.group}" if case.dimension else ""
    )
    pick = "champion" if not case.dimension else "pick"
    title = f"RoSE leaderboard: {where} ({pick}: {case.champion or 'none'})"
    return [title, line(cols), *map(line, rows)]


def description(case: CaseTables) -> str:
    """The leaderboard as an MLflow run description (markdown): the table as the terminal shows it, then the
    baseline and the "can / cannot be told apart" sentences as text."""
    prose = [*baseline_line(case), *spread_lines(case)]
    return "```\n" + "\n".join(table_lines(case)) + "\n```\n\n" + "\n\n".join(prose)


def champion_description(case: CaseTables, seed: int, dev_f1: float | None) -> str:
    """Why the registered champion was chosen: its RoSE score and interval, its human-test macro-F1 where known,
    and the runner-up (the ``challenger``)."""
    board = case.leaderboard.dropna(subset=["rose"]).set_index("candidate")
    top = board.loc[case.champion]
    text = (f"Chosen by RoSE for {case.task}/{case.language}: {case.champion}, RoSE {fmt(top['rose'])} "
            f"(bootstrap interval over seeds {fmt(top['ci_low'])} to {fmt(top['ci_high'])}, {int(top['n_seeds'])} "
            f"seeds)")  # fmt: skip
    if "human_f1" in board and not math.isnan(float(top["human_f1"])):
        text += f"; human-test macro-F1 {fmt(top['human_f1'])}"
    text += f". This version is its seed {seed}" + (f" (best dev macro-F1, {fmt(dev_f1)})." if dev_f1 is not None
                                                     else ".")  # fmt: skip
    others = board.drop(index=case.champion)
    if len(others):
        name, second = others.index[0], others.iloc[0]
        text += (f" Runner-up (alias challenger): {name}, RoSE {fmt(second['rose'])} ({fmt(second['ci_low'])} to "
                 f"{fmt(second['ci_high'])})")  # fmt: skip
        if "human_f1" in board and not math.isnan(float(second["human_f1"])):
            text += f", human-test macro-F1 {fmt(second['human_f1'])}"
        text += "."
    sentences = spread_lines(case)
    return text + ("\n\n" + " ".join(sentences) if sentences else "")


def baseline_line(case: CaseTables) -> list[str]:
    """The human-data baseline's own human-test macro-F1 (the reference point of ``gap_to_human``)."""
    board = case.leaderboard
    if "gap_to_human" not in board or "human_f1" not in board:
        return []
    known = (board["human_f1"] - board["gap_to_human"]).dropna()
    if known.empty:
        return []
    return [f"Human-data baseline (the same classifier on as many human examples per label, same seeds): "
            f"human-test macro-F1 {known.iloc[0]:.4f}; gap_to_human is each candidate's distance to it."]  # fmt: skip


def spread_lines(case: CaseTables) -> list[str]:
    """Whether the candidates' differences exceed the seed-to-seed spread (:mod:`rose.score.spread`)."""
    return spread.sentences(case.evals, case.seeds, case.candidates) if len(case.candidates) >= 2 else []


def label_free_table(case: CaseTables) -> pd.DataFrame:
    """One row per label-free selector: the candidate it picks, its cost in seconds and whether it is available."""
    free = case.label_free
    if free is None:
        return pd.DataFrame()
    from rose.score.selectors import DIRECTION

    rows = []
    for name in free.values.columns:
        col = free.values[name].dropna()
        best = (col if DIRECTION.get(name, 1) >= 0 else -col).idxmax() if len(col) else ""
        why = free.reasons.get(name, "")
        rows.append({"selector": name, "better": "higher" if DIRECTION.get(name, 1) >= 0 else "lower",
                     "pick": best, "seconds": free.seconds.get(name, float("nan")),
                     "status": ("available" if len(col) else "not available") + (f": {why}" if why else "")})  # fmt: skip
    return pd.DataFrame(rows)


def label_free_html(case: CaseTables) -> str:
    """The label-free selectors' section of a case: the pool, each selector's pick, cost and availability."""
    free = case.label_free
    if free is None:
        return ""
    e = html.escape
    head = (
        [f"<p>{e(free.pool.describe())}</p>"]
        if free.pool is not None
        else ["<p>No unlabelled pool (rose score --unlabelled): the target-text selectors are not available.</p>"]
    )
    if not math.isnan(free.probe_vs_rose):
        head.append(f"<p>rose_probe against fine-tuned RoSE: Spearman {free.probe_vs_rose:.2f}.</p>")
    embed = free.seconds.get("embedding")
    if embed is not None:
        head.append(f"<p>One embedding pass per dataset and pool: {embed:.1f} s, shared by the embedding-based "
                    "selectors.</p>")  # fmt: skip
    return "<h3>Label-free selectors</h3>" + "".join(head) + to_html_table(label_free_table(case))


def heatmap(matrix: pd.DataFrame, title: str = ""):
    """A matplotlib figure of the cross-evaluation matrix (rows: trained on, columns: tested on)."""
    import matplotlib.pyplot as plt

    n = len(matrix)
    fig, ax = plt.subplots(figsize=(2.5 + 0.9 * n, 2 + 0.7 * n))
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(n), matrix.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), matrix.index, fontsize=8)
    ax.set_xlabel("tested on the synthetic data of")
    ax.set_ylabel("trained on the synthetic data of")
    for (i, j), v in pd.DataFrame(matrix.to_numpy()).stack().items():
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
    fig.colorbar(image, ax=ax, label="macro-F1")
    ax.set_title(title or "cross-evaluation")
    fig.tight_layout()
    return fig


def scatter(scores: pd.DataFrame, human: pd.Series, title: str = ""):
    """One panel per metric: the candidates' metric value against their human-test macro-F1."""
    import matplotlib.pyplot as plt

    metrics = [m for m in scores.columns if scores[m].reindex(human.index).notna().any()]
    cols = min(4, max(1, len(metrics)))
    rows = max(1, math.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        x = scores[metric].reindex(human.index)
        ax.scatter(x, human * 100)
        for name in human.index:
            ax.annotate(name[:18], (x[name], human[name] * 100), fontsize=6)
        ax.set_xlabel(metric, fontsize=8)
        ax.set_ylabel("human-test macro-F1", fontsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(title or "metrics against human-test F1")
    fig.tight_layout()
    return fig


def png(fig, path: Path | None = None) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = buf.getvalue()
    if path:
        path.write_bytes(data)
    return data


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def html_page(
    cases: list[CaseTables],
    images: dict[str, bytes],
    summary: pd.DataFrame,
    samples: dict[tuple[str, str, str], list[dict]],
    messages: list[str],
    grouped: dict[str, pd.DataFrame] | None = None,
) -> str:
    """One self-contained HTML report (CSS and images inline; every data-derived string escaped)."""
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>rose score</title><style>{_CSS}</style>"
        "</head><body><h1>rose score: RoSE and intrinsic metrics</h1>"
    ]
    if messages:
        parts.append("<h2>What is missing</h2><ul>" + "".join(f"<li class=msg>{e(m)}</li>" for m in messages) + "</ul>")
    if len(summary):
        parts.append("<h2>Metrics judged over all cases</h2>" + to_html_table(summary))
    for dimension, table in (grouped or {}).items():
        if len(table):
            parts.append(f"<h2>Metrics judged within each {e(dimension)}</h2>" + to_html_table(table))
    for c in cases:
        key = c.title
        group = f", {e(c.dimension)} {e(c.group)}" if c.dimension else ""
        parts.append(f"<h2>Task {e(c.task)}, language {e(c.language)}{group}: "
                     f"{'pick' if c.dimension else 'champion'} {e(c.champion)}</h2>")  # fmt: skip
        parts.append("<h3>Leaderboard</h3>" + to_html_table(c.leaderboard))
        parts.extend(f"<p>{e(line)}</p>" for line in spread_lines(c))
        parts.append("<h3>Cross-evaluation matrix</h3>" + to_html_table(c.matrix, index=True))
        if f"heatmap:{key}" in images:
            parts.append(_img(images[f"heatmap:{key}"], f"heatmap {key}"))
        parts.append(label_free_html(c))
        parts.append("<h3>Metric values</h3>" + to_html_table(c.scores, index=True))
        if len(c.judged):
            parts.append("<h3>Each metric against the human test set</h3>" + to_html_table(c.judged))
        if f"scatter:{key}" in images:
            parts.append(_img(images[f"scatter:{key}"], f"scatter {key}"))
        for name in c.candidates:
            rows = samples.get((c.task, c.language, name), [])
            if rows:
                items = "".join(
                    f"<li><b>{e(str(r.get('label', '')))}</b>: {e(str(r.get('text', '')))}</li>" for r in rows
                )
                parts.append(f"<h4>Examples of {e(name)}</h4><ul>{items}</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(
    folder: Path,
    cases: list[CaseTables],
    summary: pd.DataFrame,
    samples: dict[tuple[str, str, str], list[dict]] | None = None,
    messages: list[str] = (),
    grouped: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write every report file under ``folder``; returns the HTML page's path. ``grouped``: the judgement within
    groups of each dimension (:func:`rose.score.tables.summary` with a dimension)."""
    import matplotlib

    if "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")  # files only: never open a window
    folder.mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    md = ["# rose score\n"]
    for c in cases:
        stem, key = f"{c.task}_{c.language}" + (f"_{c.key.replace('/', '_')}" if c.key else ""), c.title
        c.matrix.to_csv(folder / f"matrix_{stem}.csv")
        c.leaderboard.to_csv(folder / f"leaderboard_{stem}.csv", index=False)
        c.scores.to_csv(folder / f"metrics_{stem}.csv")
        md += [
            f"## {key} ({'pick' if c.dimension else 'champion'}: {c.champion})\n",
            "### Leaderboard\n",
            to_markdown(c.leaderboard),
            *(f"{line}\n" for line in spread_lines(c)),
            "### Cross-evaluation matrix (rows trained on, columns tested on)\n",
            to_markdown(c.matrix, index=True),
            "### Metrics\n",
            to_markdown(c.scores, index=True),
        ]
        if c.label_free is not None:
            md += ["### Label-free selectors\n", to_markdown(label_free_table(c))]
            label_free_table(c).to_csv(folder / f"selectors_{stem}.csv", index=False)
        images[f"heatmap:{key}"] = png(heatmap(c.matrix, f"{key}: cross-evaluation"), folder / f"heatmap_{stem}.png")
        if len(c.judged):
            c.judged.to_csv(folder / f"selection_{stem}.csv", index=False)
            md += ["### Against the human test set\n", to_markdown(c.judged)]
            images[f"scatter:{key}"] = png(scatter(c.scores, c.human, key), folder / f"scatter_{stem}.png")
    if len(summary):
        summary.to_csv(folder / "selection_summary.csv", index=False)
        md += ["## Over all cases\n", to_markdown(summary)]
    for dimension, table in (grouped or {}).items():
        if len(table):
            table.to_csv(folder / f"selection_summary_{dimension}.csv", index=False)
            md += [f"## Within each {dimension}, over all cases\n", to_markdown(table)]
    (folder / "report.md").write_text("\n".join(md), encoding="utf-8")
    page = folder / "report.html"
    page.write_text(html_page(cases, images, summary, samples or {}, list(messages), grouped), encoding="utf-8")
    return page
