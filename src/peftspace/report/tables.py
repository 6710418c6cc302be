"""HTML tables of the report: a discovery's decision table, best designs with their plans, sweep counts.

Every text that comes from a store goes through ``html.escape``. Numbers: errors with two decimals,
p-values with three significant digits, parameter counts with thousands separators.
"""

from __future__ import annotations

import json
from html import escape

from peftspace.design.counts import STRATEGIES

DASH = "&ndash;"


def e(value) -> str:
    """``value`` as escaped HTML text."""
    return escape(str(value), quote=True)


def num(value, digits: int = 2) -> str:
    return DASH if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


def count(value) -> str:
    return DASH if not isinstance(value, (int, float)) else f"{int(value):,}"


def row(cells, tag: str = "td", attrs: str = "") -> str:
    return f"<tr{attrs}>" + "".join(c if c.startswith(f"<{tag}") else f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def table(cls: str, header, body: list[str], foot: list[str] = (), attrs: str = "") -> str:
    head = row([e(h) for h in header], "th")
    tail = f"<tfoot>{''.join(foot)}</tfoot>" if foot else ""
    return f'<table class="{cls}"{attrs}><thead>{head}</thead><tbody>{"".join(body)}</tbody>{tail}</table>'


# ------------------------------------------------------------------------------- decision table
DECISION_HEADER = ("stage", "component", "option", "n", "mean error [CI]", "median", "KS D vs best", "p vs best",
                   "winner", "verdict")


def decision_table(stages, finished: dict[str, dict[str, int]]) -> str:
    """One block of rows per stage: its options by mean error (a racing stage: as raced), the winner and the verdict.

    ``finished`` maps stage -> option -> designs finished now (for options the ranking does not hold;
    a racing stage: the designs that serve the option).
    """
    from peftspace.report import racing

    body = []
    for view in stages:
        stage = view.stage
        name = str(stage.get("stage", "?"))
        raced = stage.get("protocol") == "racing"
        rows = (racing.option_rows if raced else _option_rows)(stage, finished.get(name, {}))
        span = f' rowspan="{len(rows)}"'
        status = stage.get("status") or "?"
        first = [f'<td{span}><a href="#{e(stage_id(stage))}">{e(name)}</a><br><span class="muted">{e(status)}</span></td>',
                 f'<td{span}>{e(stage.get("component", ""))}<br><span class="muted">{e(stage.get("title", ""))}</span></td>']
        last = [f'<td{span} class="winner-name">{e(stage["winner"]) if stage.get("winner") else DASH}</td>',
                f'<td{span} class="verdict">{(racing.verdict_text if raced else verdict_text)(stage)}</td>']
        for i, (option, cells) in enumerate(rows):
            attrs = ' class="winner"' if option == stage.get("winner") else ""
            body.append(row((first if i == 0 else []) + cells + (last if i == 0 else []), attrs=attrs))
    return table("decision", DECISION_HEADER, body)


def _option_rows(stage: dict, finished: dict[str, int]) -> list[tuple[str, list[str]]]:
    ranking = stage.get("ranking") or {}
    ranked = {o["name"]: o for o in ranking.get("options") or ()}
    rows = []
    for name, o in ranked.items():
        ci = o.get("mean_ci") or {}
        rows.append((name, [e(name), count(o.get("n")), f"{num(o.get('mean'))} [{num(ci.get('low'))}, {num(ci.get('high'))}]",
                            num(o.get("median")), num(o.get("ks_vs_best"), 3), p_value(o.get("ks_p_vs_best"))]))
    for name in stage.get("options") or {}:
        if name not in ranked:
            n = finished.get(name, 0)
            why = "not ranked (fewer than 2 finished designs when ranked)" if ranking else "no ranking yet"
            rows.append((name, [e(name), count(n), f'<td colspan="4" class="muted">{why}</td>']))
    return rows or [("", ['<td colspan="6" class="muted">no options</td>'])]


def p_value(value) -> str:
    return DASH if not isinstance(value, (int, float)) else f"{value:.3g}"


def verdict_text(stage: dict) -> str:
    """The verdict with its confidence and the best-vs-runner-up difference interval, or why there is none."""
    ranking = stage.get("ranking")
    if not ranking:
        why = stage.get("verdict") or "not ranked yet: fewer than two options have at least two finished designs"
        return f'<span class="muted">{e(why)} (stage {e(stage.get("status") or "?")})</span>'
    d = ranking.get("difference") or {}
    confidence = ranking.get("confidence")
    level = f"{100 * confidence:g}%" if isinstance(confidence, (int, float)) else "?"
    zero = "excludes 0" if ranking.get("verdict") == "decided" else "includes 0"
    return (f'<strong>{e(ranking.get("verdict", "?"))}</strong> at {e(level)}: mean error of '
            f'{e(ranking.get("runner_up", "?"))} &minus; {e(ranking.get("best", "?"))} = {num(d.get("estimate"))} '
            f'[{num(d.get("low"))}, {num(d.get("high"))}], {zero} '
            f'<span class="muted">({e(ranking.get("n_resamples", "?"))} bootstrap resamples)</span>')


def stage_id(stage: dict) -> str:
    return "stage-" + "".join(c if c.isalnum() else "-" for c in str(stage.get("stage", "")))


# ------------------------------------------------------------------------------ best designs
def best_table(best, tasks: list[str], anchor: str, by: str = "error") -> str:
    """Rank (linking to ``{anchor}-{rank}``), error, per-task scores, average score, trainable parameters,
    study, trial, design index. Ranked by validation error (``by``), the validation error comes first and
    the test error is called so."""
    errors = ("validation error", "test error") if by == "validation_error" else ("error",)
    header = ("rank", *errors, *(f"{t} score" for t in tasks), "average score", "trainable", "study", "trial", "design index")
    body = []
    for b in best:
        scores = b.row.get("scores") or {}
        shown = [num(b.row.get("validation_error"))] if by == "validation_error" else []
        body.append(row([f'<a href="#{e(anchor)}-{b.rank}">{b.rank}</a>', *shown, num(b.row["error"]),
                         *(num(scores.get(t)) for t in tasks), num(b.row.get("average_score")), count(b.row.get("trainable")),
                         e(b.study), count(b.row.get("trial")), count(b.row.get("design_index"))]))
    return table("best", header, body)


def plan_table(plan, key: str) -> str:
    """The per-layer plan as the CLI prints it: frozen layers too, and a totals row (``plan.total``)."""
    planned = {layer.index: layer for layer in plan.layers}
    group_of = {i: g for g, (first, end) in enumerate(plan.groups) for i in range(first, end + 1)}
    body = []
    for index in range(max((end for _, end in plan.groups), default=-1) + 1):
        layer = planned.get(index)
        if layer is None:
            body.append(row([str(index), "", e(group_of.get(index, "")), '<span class="muted">frozen</span>', "0", "", "", "", "", "0"],
                            attrs=' class="frozen"'))
            continue
        cells = [count(layer.counts[s]) if s in layer.counts else "" for s in STRATEGIES]
        body.append(row([str(index), e(layer.stack), str(layer.group), e(layer.describe()), count(layer.budget), *cells,
                         count(layer.total)]))
    totals = plan.strategy_totals()
    foot = [row(["total", "", "", "", count(plan.budget), *(count(totals[s]) if s in totals else "" for s in STRATEGIES),
                 count(plan.total)], attrs=' class="total"')]
    header = ("layer", "stack", "group", "sizes", "budget", *STRATEGIES, "total")
    return table("plan", header, body, foot, f' data-plan="{e(key)}"')


def design_json(design) -> str:
    return f"<pre>{e(json.dumps(design, indent=1, sort_keys=True))}</pre>"


# -------------------------------------------------------------------------------- sweep status
def counts_table(status: dict) -> str:
    designs, trials = status.get("designs") or {}, status.get("trials") or {}
    states = ("complete", "running", "waiting", "failed", "missing", "total")
    body = [row(["designs", *(count(designs.get(s, 0)) for s in states)]),
            row(["Optuna trials", *(count(trials.get(s.upper(), 0)) for s in ("complete", "running", "waiting", "fail")),
                 "", count(sum(trials.values()))])]
    return table("counts", ("", *states), body)


def failures_table(status: dict) -> str:
    failures = status.get("failures") or []
    if not failures:
        return '<p class="muted">No failed designs.</p>'
    body = [row([count(f.get("design_index")), count(f.get("trial")), e(f.get("reason", ""))]) for f in failures]
    return table("failures", ("design", "trial", "reason"), body)
