"""The report of a racing stage: its raced options and aliases, its looks, eliminations and verdict.

Layout only. Every number of a race is the one the discovery logged (the stage's ``race``, a
``RaceResult.to_dict()``: per look its block count, level ``alpha_t`` and paired tests; the
survivors, status, winner rule and means), its ``trials``, ``test`` and ``fidelity``; the EDFs were
drawn by :mod:`peftspace.report.build` from the validation errors of the stage study's designs.
Differences are ``mean(error a - error b)`` over the blocks both ran: negative favours ``a``.
"""

from __future__ import annotations

from peftspace.report.tables import DASH, count, e, num, p_value, row, table

FIDELITY_FLOOR = 0.8  # below it, mid-training validation errors rank designs unlike the final ones
EDF_CAPTION = ('<p class="muted edf-caption">Racing decides on validation errors, so these are EDFs of validation errors: '
               "each curve holds the complete designs of the stage study that serve the option (one point per design and "
               "replicate; a design two options share counts for both; designs an option ran after it was eliminated are "
               "shown too, though the race did not read them).</p>")


def aliases_of(stage: dict, option: str) -> list[str]:
    """The options raced as ``option`` (they build the same designs on this backbone)."""
    return [alias for alias, representative in (stage.get("aliases") or {}).items() if representative == option]


def option_label(stage: dict, option: str) -> str:
    """``option``, with its aliases beside it: ``uniform (= decreasing)``."""
    same = aliases_of(stage, option)
    return option + (f" (= {names(same)})" if same else "")


def raced(stage: dict) -> list[str]:
    return list(stage.get("raced") or stage.get("options") or ())


def names(options) -> str:
    """Options as one text: joined by "; " when a name holds a comma (assignments such as ``AL,AP,APB,PBL``)."""
    options = [str(o) for o in options]
    return ("; " if any("," in o for o in options) else ", ").join(options)


def eliminations(race: dict | None) -> dict[str, tuple[dict, str]]:
    """option -> (the look that eliminated it, the option that beat it)."""
    return {option: (look, by) for look in (race or {}).get("looks") or ()
            for option, by in (look.get("eliminated") or {}).items()}


def _pair(look: dict, one: str, other: str) -> dict | None:
    return next((p for p in look.get("pairs") or () if {p.get("a"), p.get("b")} == {one, other}), None)


def _level(alpha) -> str:
    return f"{100 * (1 - alpha):.4g}%" if isinstance(alpha, (int, float)) else "?"


def _interval(pair: dict) -> str:
    low, high = (list(pair.get("interval") or ()) + [None, None])[:2]
    return f"[{num(low)}, {num(high)}]"


def _difference(pair: dict) -> str:
    return f"{e(pair.get('a'))} &minus; {e(pair.get('b'))} = {num(pair.get('difference'))} {_interval(pair)}"


# ------------------------------------------------------------------------------- decision table
def option_rows(stage: dict, finished: dict[str, int]) -> list[tuple[str, list[str]]]:
    """The decision table's rows of a racing stage: each raced option (aliases beside it), its designs, how it fared."""
    race = stage.get("race")
    out, means = eliminations(race), (race or {}).get("means") or {}
    survivors = set((race or {}).get("survivors") or ())
    rows = []
    for option in raced(stage):
        if option in out:
            look, by = out[option]
            pair = _pair(look, option, by)
            fared = (f"out at look {e(look.get('number'))} ({count(look.get('blocks'))} blocks), by {e(by)}"
                     + (f": {_difference(pair)}, p = {p_value(pair.get('p_value'))}" if pair else ""))
        elif option in survivors:
            running = " (race running)" if race.get("status") == "running" else ""
            fared = (f"survivor{running}: mean validation error {num(means[option])} over the blocks every survivor ran"
                     if option in means else f"survivor{running}")
        elif race is None and stage.get("why"):
            fared = e(stage["why"])
        else:
            fared = "not raced yet"
        rows.append((option, [e(option_label(stage, option)), count(finished.get(option, 0)),
                              f'<td colspan="4" class="race">{fared}</td>']))
    return rows or [("", ['<td colspan="6" class="muted">no options</td>'])]


def verdict_text(stage: dict) -> str:
    """Status and winner rule of the race, and the last look's intervals among its survivors (of the winner with
    the options it eliminated there, when it is the only survivor)."""
    race = stage.get("race")
    if not race:
        why = stage.get("why") or "not raced yet: no look has been made"
        verdict = f"<strong>{e(stage['verdict'])}</strong>: " if stage.get("verdict") else ""
        return f'{verdict}<span class="muted">{e(why)} (stage {e(stage.get("status") or "?")})</span>'
    status = race.get("status") or "?"
    text = f"<strong>{e(status)}</strong>"
    if race.get("winner_rule"):
        text += f": {e(race['winner_rule'])}"
    elif status == "running":
        text += f': <span class="muted">the next look needs {count(race.get("blocks_needed"))} blocks</span>'
    looks = race.get("looks") or []
    if not looks:
        return text
    last, alive = looks[-1], set(race.get("survivors") or ())
    pairs = [p for p in last.get("pairs") or () if {p.get("a"), p.get("b")} <= alive]
    among = "among survivors"
    if not pairs and len(alive) == 1:
        pairs, among = [p for p in last.get("pairs") or () if alive & {p.get("a"), p.get("b")}], "of the winner"
    if pairs:
        text += (f'; look {e(last.get("number"))} ({count(last.get("blocks"))} blocks), {_level(last.get("alpha"))} intervals '
                 f'{among}: ' + "; ".join(_difference(p) for p in pairs))
    return text


# -------------------------------------------------------------------------------- stage section
def stage_block(view, finished: dict[str, int]) -> str:
    """A racing stage: its study and trials, the EDF of validation errors, the race (verdict, eliminations, paired
    differences per look), the survivors' test errors, the fidelity check, and the pool of a strategy stage."""
    from peftspace.report.page import curves_block, stage_heading

    stage, data = view.stage, view.race
    parts = [stage_heading(stage, "racing")]
    if stage.get("pool"):
        parts.append(pool_block(stage["pool"], data.pool, raced(stage)))
    parts.append(_study_line(stage, data))
    items = [f"<li><strong>{e(option_label(stage, o))}</strong>: {count(finished.get(o, 0))} designs with a validation error"
             + ("" if finished.get(o) else ' &mdash; <span class="note">none yet, so no curve</span>') + "</li>"
             for o in raced(stage)]
    parts.append(f"<ul>{''.join(items)}</ul>")
    if view.edf is None:
        parts.append('<p class="note">No raced option of this stage has finished designs yet: no plot.</p>')
    else:
        parts += curves_block(view, "validation errors", EDF_CAPTION)
    parts.append(race_block(stage))
    parts.append(test_block(stage))
    parts.append(fidelity_block(stage.get("fidelity")))
    return "\n".join(parts)


def _study_line(stage: dict, data) -> str:
    """The stage study (a strategy stage: its final race's) and the race's trials by state, as logged."""
    study, trials = stage.get("study"), stage.get("trials") or {}
    which = "final race study" if stage.get("pool") else "study"
    if not study:
        where = '<span class="muted">no stage study (none recorded yet, or nothing to race)</span>'
    else:
        missing = "" if data.study is not None else ' (<span class="note">not in the store</span>)'
        where = f"{which} <code>{e(study)}</code>{missing}"
    if not trials:
        return f"<p>{where}.</p>"
    kinds = [(k, trials[k]) for k in ("complete", "failed", "cancelled", "waiting", "running", "total") if k in trials]
    shown = "".join(f", {count(v)} {k}" for k, v in kinds)
    return f"<p>{where}: trials used {count(trials.get('used'))} (complete and failed){shown}.</p>"


def race_block(stage: dict) -> str:
    """The race's summary, its elimination history and one paired-differences table per look."""
    race = stage.get("race")
    if not race:
        return f'<p class="muted">No race recorded: {e(stage.get("why") or "the race has not looked yet")}.</p>'
    plan = race.get("plan") or stage.get("plan") or {}
    looks = race.get("looks") or []
    means = race.get("means") or {}
    summary = [("status", f"<strong>{e(race.get('status', '?'))}</strong>"),
               ("survivors", e(names(option_label(stage, s) for s in race.get("survivors") or ()) or "none")),
               ("winner", e(race.get("winner") or "not yet")), ("winner rule", e(race.get("winner_rule") or "not yet")),
               ("survivors' mean validation errors", e(names(f"{o} {v:.2f}" for o, v in means.items())) or DASH),
               ("plan", e(", ".join(f"{k}={v}" for k, v in plan.items())) or DASH),
               ("replicates", count(stage.get("replicates")))]
    if race.get("status") == "running":
        summary.append(("next look", f"at {count(race.get('blocks_needed'))} blocks"))
    from peftspace.report.page import definition_list

    parts = ["<h4>Race</h4>", definition_list(summary)]
    if not looks:
        return "\n".join(parts + ['<p class="muted">No look yet.</p>'])
    history = [row([count(look.get("number")), count(look.get("blocks")), num(look.get("alpha"), 4),
                    e(names(look.get("alive") or ())),
                    e("; ".join(f"{o} by {by}" for o, by in (look.get("eliminated") or {}).items())) or "none",
                    e(names(look.get("survivors") or ())), "yes" if look.get("tie") else "no"]) for look in looks]
    parts += ["<h4>Eliminations</h4>",
              table("race-looks", ("look", "blocks", "level alpha_t", "alive", "eliminated (by)", "survivors", "tie"), history)]
    delta = plan.get("delta")
    for look in looks:
        body = [row([f"{e(p.get('a'))} &minus; {e(p.get('b'))}", count(p.get("n")), num(p.get("difference")), _interval(p),
                     p_value(p.get("p_value")), "yes" if p.get("rejected") else "no", "yes" if p.get("equivalent") else "no"])
                for p in look.get("pairs") or ()]
        parts.append(f'<h4>Look {e(look.get("number"))}: {count(look.get("blocks"))} blocks, alpha_t = '
                     f'{num(look.get("alpha"), 4)} <span class="muted">(intervals at {_level(look.get("alpha"))}; '
                     f'equivalent: within delta = {e(delta if delta is not None else "?")})</span></h4>')
        parts.append(table("race-pairs", ("pair (a − b)", "n blocks", "mean difference", "interval", "p-value",
                                          "rejected (Holm)", "equivalent"), body, attrs=f' data-look="{e(look.get("number"))}"'))
    return "\n".join(parts)


def test_block(stage: dict) -> str:
    """The survivors' mean test errors, as the discovery logged them: reported, never decided on."""
    tests = stage.get("test") or {}
    if not tests:
        return ""
    body = [row([e(option_label(stage, o)), num(t.get("mean")), count(t.get("n"))]) for o, t in tests.items()]
    return ('<h4>Survivors\' test errors <span class="muted">(reported, not used for decisions)</span></h4>'
            + table("race-test", ("survivor", "mean test error", "complete trials"), body))


def fidelity_block(fidelity) -> str:
    """The Spearman correlation of mid-training and final validation errors, with a warning below 0.8."""
    if not isinstance(fidelity, dict):
        return ('<p class="muted">Fidelity (mid-training vs final validation errors): not computed (fewer than three '
                "complete trials with both, or no spread).</p>")
    rho = fidelity.get("spearman_mid_final")
    text = (f"fidelity: Spearman correlation of mid-training and final validation errors {num(rho)} over "
            f"{count(fidelity.get('n'))} trials")
    if fidelity.get("warning") or (isinstance(rho, (int, float)) and rho < FIDELITY_FLOOR):
        return (f'<p class="note fidelity">warning: {text}, below {FIDELITY_FLOOR}: designs rank differently mid-training '
                "and at the end, so the decisions may depend on the schedule's length.</p>")
    return f'<p class="muted fidelity">{text[0].upper() + text[1:]}.</p>'


def pool_block(pool: dict, sweep, finalists) -> str:
    """The strategy stage's pool: its study, size, failures and subsets, the best predicted assignments, the finalists."""
    study = pool.get("study")
    missing = "" if sweep is not None else ' (<span class="note">not in the store</span>)'
    lines = [f"<h4>Pool</h4><p>study <code>{e(study or '-')}</code>{missing}: {count(pool.get('size'))} designs, "
             f"{count(pool.get('failed'))} failed (set to the pool's worst validation error); per-group subsets "
             f"{e(', '.join(pool.get('subsets') or ()))}. An additive fit of per-group method effects on the pool's "
             "validation errors " + ("keeps each group's best subsets for a second pool" if pool.get("second") else
                                     "predicts the assignments below") + "; the final race takes the best predicted (and "
             f"the recalled T5-base S4 assignment, where the space allows it): {e(names(finalists)) or DASH}.</p>"]
    second = pool.get("second")
    if second:
        kept = "; ".join(f"group {g}: {', '.join(s)}" for g, s in enumerate(second.get("subsets") or (), start=1))
        lines.append(f"<p>Second pool: study <code>{e(second.get('study') or '-')}</code>, {count(second.get('size'))} "
                     f"designs, {count(second.get('failed'))} failed; subsets kept {e(kept)}. A fit with one effect per "
                     "group and kept subset predicts the assignments below.</p>")
    predicted = pool.get("predicted") or []
    if predicted:
        body = [row([str(i), e(p.get("assignment")), num(p.get("error"))]) for i, p in enumerate(predicted, start=1)]
        lines.append(table("pool-predicted", ("rank", "assignment", "predicted validation error"), body))
    else:
        lines.append('<p class="muted">No fit yet: the pool has not finished.</p>')
    return "\n".join(lines)
