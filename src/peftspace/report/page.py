"""The report's HTML page: one section per discovery and per plain sweep, PNGs linked relatively.

Layout only: the numbers come from the store, the recorded rankings and the plots already drawn.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from peftspace.report.tables import (best_table, count, counts_table, decision_table, design_json, e, failures_table,
                                     plan_table, stage_id)

SCHEDULE_KEYS = ("max_steps", "epochs", "batch_size", "learning_rate", "max_length", "max_train_examples", "max_eval_examples",
                 "warmup_ratio", "weight_decay", "format")
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #ccc;padding:3px 7px;vertical-align:top}
th{background:#f3f3f3}td{text-align:right}td:first-child,.verdict,.winner-name{text-align:left}
tr.winner td{font-weight:600;background:#eef7ee}tr.total td{font-weight:600;border-top:2px solid #888}
tr.frozen td{color:#999}.muted{color:#777;font-weight:normal}.note{color:#8a5a00}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{font-weight:600}dd{margin:0}
img{max-width:100%;border:1px solid #eee}pre{background:#f7f7f7;padding:.5em;overflow:auto;font-size:12px}
section.design{border-left:3px solid #ddd;padding-left:1em;margin-bottom:1.5em}
"""


def render_page(url: str, discoveries, sweeps) -> str:
    """The whole page for a store (``url`` with its password hidden) from the views ``build`` made."""
    from peftspace.sweep.store import redact

    contents = [f'<li><a href="#discovery-{i}">discovery {e(v.data.name)}</a></li>' for i, v in enumerate(discoveries, 1)]
    contents += [f'<li><a href="#sweep-{i}">sweep {e(v.data.study)}</a></li>' for i, v in enumerate(sweeps, 1)]
    body = [f"<h1>peftspace report</h1><p>Store: <code>{e(redact(url))}</code></p>", f"<ul>{''.join(contents)}</ul>"]
    body += [discovery_section(v, f"discovery-{i}") for i, v in enumerate(discoveries, 1)]
    body += [sweep_section(v, f"sweep-{i}") for i, v in enumerate(sweeps, 1)]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>peftspace report</title>'
            f'<style>{STYLE}</style></head><body>\n' + "\n".join(body) + "\n</body></html>\n")


def definition_list(items) -> str:
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def schedule_summary(schedule: dict | None) -> str:
    if not schedule:
        return '<span class="muted">default</span>'
    shown = [f"{key}={schedule[key]}" for key in SCHEDULE_KEYS if schedule.get(key) is not None]
    if schedule.get("max_steps") is not None:
        shown = [s for s in shown if not s.startswith("epochs=")]
    return e(", ".join(shown))


def _space_name(space) -> str:
    return e(space.get("name", "?")) if isinstance(space, dict) else '<span class="muted">not yet</span>'


def image(record, alt: str) -> str:
    return f'<p><img src="{quote(record.file)}" alt="{e(alt)}"></p>'


# ------------------------------------------------------------------------------------ discovery
def discovery_section(view, anchor: str) -> str:
    record, name = view.data.record, view.data.name
    racing = record.get("protocol") == "racing"
    header = definition_list(_racing_header(record) if racing else [
        ("model", e(record.get("model", "?"))), ("tasks", e(", ".join(record.get("tasks") or []))),
        ("samples per space", count(record.get("samples_per_space"))), ("seed", e(record.get("seed", "?"))),
        ("schedule", schedule_summary(record.get("schedule"))), ("status", f"<strong>{e(record.get('status', '?'))}</strong>"),
        ("start space", _space_name(record.get("start"))), ("final space", _space_name(record.get("final_space"))),
        ("discovery's best", _picked(record.get("best"), False)), ("final design", e(record.get("final_rule") or "not yet"))])
    parts = [f'<section class="discovery" id="{anchor}"><h2>Discovery {e(name)}</h2>', header]
    finished = {str(s.stage.get("stage", "?")): _finished(view.data, s) for s in view.stages}
    parts += ["<h3>Decision table</h3>", f'<p class="muted">{DECISION_NOTE}</p>', decision_table(view.stages, finished)]
    parts += [stage_block(view.data, s, finished[str(s.stage.get("stage", "?"))]) for s in view.stages]
    final = record.get("final_design")
    if isinstance(final, dict):
        parts += ["<h3>Discovered design</h3>", design_block(final, *view.final_plan, None, f"{anchor}-final")]
    parts.append(best_block(view.best, list(record.get("tasks") or []), anchor, view.ranked_by))
    return "\n".join(parts) + "</section>"


DECISION_NOTE = (
    "Paper protocol stages: options by mean error (recorded ranking: bootstrap CI of the mean, KS test against the best); "
    "the verdict is decided when the interval of the runner-up's minus the best's mean error excludes 0. "
    "Racing protocol stages: the distinct options (aliases, which build the same designs, beside them) race on paired "
    "blocks and are judged on validation errors only; at each look, paired t-tests of every surviving pair with Holm's "
    "correction eliminate the worse option of each rejected pair, so the family-wise error rate of eliminations over all "
    "looks is at most alpha. The race stops decided (one option left), tie (the survivors are equivalent within delta) or "
    "max_blocks (the survivors are a confidence set for the best); the verdict gives the winner rule and the last look's "
    "intervals of the paired differences (at that look's level).")


def _racing_header(record: dict) -> list[tuple[str, str]]:
    plan = record.get("plan") or {}
    shown = ", ".join(f"{k}={plan[k]}" for k in ("alpha", "delta", "max_blocks", "first_look", "look_every") if k in plan)
    final = record.get("final_errors")
    errors = (f"validation {_fmt(final.get('validation'))}, test {_fmt(final.get('test'))} (reported, not used for "
              f"decisions; {e(final.get('study'))}, trial {count(final.get('trial'))})" if isinstance(final, dict) else None)
    items = [("model", e(record.get("model", "?"))), ("tasks", e(", ".join(record.get("tasks") or []))),
             ("protocol", "racing: paired blocks, error-controlled eliminations, decisions on validation errors"),
             ("race plan", e(shown or "?")), ("replicates", count(record.get("replicates"))),
             ("pool size", count(record.get("pool_size"))),
             ("max trials", count(record.get("max_trials")) if record.get("max_trials") is not None else "no cap"),
             ("seed", e(record.get("seed", "?"))), ("schedule", schedule_summary(record.get("schedule"))),
             ("status", f"<strong>{e(record.get('status', '?'))}</strong>"), ("start space", _space_name(record.get("start"))),
             ("final space", _space_name(record.get("final_space"))), ("discovery's best", _picked(record.get("best"), True)),
             ("final design", e(record.get("final_rule") or "not yet"))]
    items += [("final design's errors", errors)] if errors else []
    check = record.get("fidelity_result")
    return items + ([("fidelity check", _check(check))] if isinstance(check, dict) else [])


def _check(check: dict) -> str:
    """The fidelity check: designs re-trained longer, and the rank correlation of short and long validation errors."""
    rho = check.get("spearman")
    text = (f"{count(check.get('designs'))} designs re-trained {e(check.get('factor', '?'))}x longer in "
            f"<code>{e(check.get('study', '?'))}</code> (not ranked among the best designs): ")
    if not isinstance(rho, (int, float)):
        return text + f'<span class="muted">{e(check.get("why") or "not finished")}</span>'
    text += (f"Spearman correlation of short and long validation errors {rho:.2f} over "
             f"{count(check.get('finished'))} designs")
    if check.get("warning"):
        return f'<span class="note">warning: {text}, below 0.8: decisions may depend on the schedule</span>'
    return text


def _picked(best, by_validation: bool) -> str:
    if not isinstance(best, dict):
        return '<span class="muted">not yet</span>'
    errors = (f"validation error {e(_fmt(best.get('validation_error')))}, test error {e(_fmt(best.get('error')))}"
              if by_validation else f"error {e(_fmt(best.get('error')))}")
    return f"{e(best.get('study'))}, trial {count(best.get('trial'))}, {errors}"


def _finished(data, view) -> dict[str, int]:
    if view.race is not None:
        return {option: len(rows) for option, rows in view.race.served.items()}
    sweeps = {option: data.sweeps.get(entry.get("study")) for option, entry in (view.stage.get("options") or {}).items()}
    return {option: len(sweep.trials) if sweep else 0 for option, sweep in sweeps.items()}


def stage_block(data, view, finished: dict[str, int]) -> str:
    """A stage's progress per option, its EDF plot and its normalized EDF plot (or why there is none)."""
    if view.race is not None:
        from peftspace.report.racing import stage_block as racing_block

        return racing_block(view, finished)
    stage = view.stage
    parts = [stage_heading(stage)]
    items = []
    for option, entry in (stage.get("options") or {}).items():
        sweep = data.sweeps.get(entry.get("study"))
        if not entry.get("study"):
            state = '<span class="note">no sweep: its subspace holds no feasible design</span>'
        elif sweep is None:
            state = '<span class="note">no finished designs: its sweep has not started (no such study in the store)</span>'
        else:
            designs = sweep.status.get("designs") or {}
            state = (f"{count(designs.get('complete', 0))} of {count(designs.get('total', 0))} designs finished, "
                     f"{count(designs.get('failed', 0))} failed, "
                     f"{count(designs.get('running', 0) + designs.get('waiting', 0))} queued or running")
            if not finished.get(option):
                state += ' &mdash; <span class="note">no finished designs, so no curve</span>'
        items.append(f"<li><strong>{e(option)}</strong> <code>{e(entry.get('study') or '-')}</code>: {state}</li>")
    parts.append(f"<ul>{''.join(items)}</ul>")
    if view.edf is None:
        parts.append('<p class="note">No option of this stage has finished designs yet: no plot.</p>')
        return "\n".join(parts)
    return "\n".join(parts + curves_block(view))


def stage_heading(stage: dict, protocol: str = "") -> str:
    label = f"{stage.get('stage', '?')}: {stage.get('title') or stage.get('component') or ''}"
    status = e(stage.get("status", "?")) + (f", {e(protocol)}" if protocol else "")
    return f'<h3 id="{e(stage_id(stage))}">Stage {e(label)} <span class="muted">({status})</span></h3>'


def curves_block(view, what: str = "errors", caption: str = "") -> list[str]:
    """A stage's EDF plot (with ``caption``), then its normalized EDF plot and shared bins, or why there is none."""
    name, of = view.stage.get("stage", "?"), "" if what == "errors" else f" of {what}"
    parts = [image(view.edf, f"EDF of {what}, stage {name}")] + ([caption] if caption else [])
    if view.normalized is not None:
        edges = ", ".join(f"{edge:,.0f}" for edge in view.normalized.edges)
        parts.append(image(view.normalized, f"complexity-normalized EDF{of}, stage {name}"))
        parts.append(f'<p class="muted">Shared bin edges (trainable parameters) for every option: {e(edges)}</p>')
    elif view.normalized_note:
        parts.append(f'<p class="muted">{e(view.normalized_note)}</p>')
    return parts


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else str(value)


# ---------------------------------------------------------------------------------------- sweep
def sweep_section(view, anchor: str) -> str:
    data = view.data
    d = data.definition
    space = d.get("space") or {}
    header = definition_list([
        ("model", e(d.get("model", "?"))), ("tasks", e(", ".join(d.get("tasks") or []))), ("space", _space_name(space)),
        ("samples", count(d.get("samples"))), ("seed", e(d.get("seed", "?"))), ("schedule", schedule_summary(d.get("schedule"))),
        ("status", "<strong>done</strong>" if data.status.get("done") else "<strong>running</strong>")])
    parts = [f'<section class="sweep" id="{anchor}"><h2>Sweep {e(data.study)}</h2>', header,
             "<h3>Designs and trials per state</h3>", counts_table(data.status), "<h3>Failures</h3>", failures_table(data.status)]
    parts.append("<h3>EDF of errors</h3>")
    parts.append(image(view.edf, f"EDF of errors, sweep {data.study}") if view.edf is not None
                 else '<p class="note">No finished designs yet: no plot.</p>')
    parts.append(best_block(view.best, list(d.get("tasks") or []), anchor))
    return "\n".join(parts) + "</section>"


# --------------------------------------------------------------------------------- best designs
def best_block(best, tasks: list[str], anchor: str, by: str = "error") -> str:
    """The best designs' table, then each design with its per-layer plan (or its JSON and a note).

    ``by``: what they are ranked by, ``"error"`` or ``"validation_error"`` (then both errors are shown).
    """
    what = "validation error" if by == "validation_error" else "error"
    if not best:
        return '<h3>Best designs</h3><p class="note">No finished designs yet.</p>'
    parts = [f"<h3>Best designs (top {len(best)} by {what})</h3>", best_table(best, tasks, f"{anchor}-design", by)]
    for b in best:
        errors = (f"validation error {_fmt(b.row.get('validation_error'))}, test error {_fmt(b.row['error'])}"
                  if by == "validation_error" else f"error {_fmt(b.row['error'])}")
        parts.append(f'<section class="design" id="{e(anchor)}-design-{b.rank}"><h4>#{b.rank}: {errors} '
                     f'<span class="muted">({e(b.study)}, trial {count(b.row.get("trial"))})</span></h4>')
        parts.append(design_block(b.row.get("design"), b.plan, b.note, b.row.get("trainable"), f"{anchor}-{b.rank}"))
        parts.append("</section>")
    return "\n".join(parts)


def design_block(design, plan, note: str | None, trained, key: str) -> str:
    """A design in one line, then its per-layer plan (or, without one, the note and the stored JSON).

    ``trained``: the trainable count a trial measured (None: not trained), compared with the plan.
    ``key`` marks the plan table (``data-plan``) so that it can be found.
    """
    parts = [f"<p>{e(_describe(design))}</p>"]
    if plan is None:
        return "\n".join(parts + [f'<p class="note">{e(note or "no plan")}</p>{design_json(design)}'])
    measured = ""
    if trained is not None:
        check = "as planned" if trained == plan.training_total else f"the plan trains {plan.training_total:,}"
        measured = f"; trained in the trial {count(trained)} ({check})"
    parts.append(f'<p class="muted">{e(plan.model_type)}: budget {plan.budget:,} of {plan.backbone_parameters:,} backbone '
                 f"parameters; planned {plan.total:,}{measured}. Sizes: A adapter bottleneck, P prefix length, B BitFit, "
                 "L LoRA rank.</p>")
    parts.append(plan_table(plan, key))
    parts += [f'<p class="note">note: {e(n)}</p>' for n in plan.notes]
    parts.append(f"<details><summary>design</summary>{design_json(design)}</details>")
    return "\n".join(parts)


def _describe(design) -> str:
    """One line: grouping, allocation, tuned groups, strategies, budget."""
    if not isinstance(design, dict):
        return "(no design stored)"
    grouping = design.get("grouping")
    grouping = json.dumps(grouping) if not isinstance(grouping, str) else f"{grouping} ({design.get('num_groups')} groups)"
    tuned = design.get("tuned_groups")
    budget = design.get("budget_params") or design.get("budget_fraction")
    return (f"grouping {grouping}; allocation {design.get('allocation')}; tuned groups {'all' if tuned is None else tuned}; "
            f"strategies {', '.join(design.get('strategies') or [])}; budget {budget}")
