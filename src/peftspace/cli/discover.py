"""The discover command: S0 -> S4, raced on paired blocks (or the paper's fixed-N protocol), resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from peftspace.cli._common import MODEL, app, console, parse_workers, quiet_optuna, tasks_option
from peftspace.cli.options import RUN, SCHEDULE, SPACE, apply_space_options, make_schedule, with_options


@app.command()
@with_options(SPACE, RUN, SCHEDULE)
def discover(model: str = MODEL, tasks: str = tasks_option(),
             protocol: str = typer.Option("racing", "--protocol", help="racing (paired blocks, error-controlled "
                                                                      "eliminations) | paper (fixed N per option, unpaired)."),
             samples_per_space: int = typer.Option(100, "--samples-per-space", help="paper: designs trained per option."),
             start: str = typer.Option("S0", "--start", help="The space the first stage narrows: S0..S4 or a space file."),
             stages: str = typer.Option("grouping,allocation,tuned,strategies", help="Components to decide, in order."),
             candidates: str = typer.Option(None, help="Strategy subsets compared per group (default all 15), e.g. L,A,AL,PBL."),
             alpha: float = typer.Option(0.05, help="racing: family-wise error of eliminations over all pairs and looks."),
             delta: float = typer.Option(1.0, help="racing: indifference zone in error points (closer options tie)."),
             max_blocks: int = typer.Option(20, "--max-blocks", help="racing: the most blocks a race draws."),
             first_look: int = typer.Option(5, "--first-look", help="racing: blocks before the first look."),
             look_every: int = typer.Option(5, "--look-every", help="racing: blocks between looks."),
             replicates: int = typer.Option(1, help="racing: seeds per design (its error is their mean)."),
             pool_size: int = typer.Option(184, "--pool-size", help="racing: designs in the strategy stage's pools "
                                                                   "together."),
             narrow: int = typer.Option(3, "--narrow", help="racing: subsets kept per group for the strategy stage's "
                                                            "second pool (0: one pool)."),
             final_blocks: int = typer.Option(5, "--final-blocks", help="racing, with --narrow: the most blocks of the "
                                                                        "strategy stage's final race."),
             max_trials: int = typer.Option(None, "--max-trials", help="racing: a cap on the discovery's trials."),
             wait: bool = typer.Option(True, "--wait/--no-wait", help="With --workers 0: wait for workers elsewhere "
                                                                    "and make each look as their blocks finish."),
             fidelity_check: int = typer.Option(0, "--fidelity-check", help="Re-train K designs 3x longer at the end and "
                                                                           "report the rank correlation (0: off)."),
             name: str = typer.Option(None, "--name", help="Discovery name (default discover-MODEL-TASKS)."),
             out: Path = typer.Option(None, "--out", help="Where decisions.json and the design go."),
             confidence: float = typer.Option(0.95, help="paper: confidence of the verdicts' bootstrap intervals."),
             space_options: dict = None, run: dict = None, training: dict = None) -> None:
    """Run S0 -> S4: per stage, race the options on paired blocks (or sweep each option's subspace), keep the winner."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from peftspace.design.space import ALL_SUBSETS
    from peftspace.discover import run_discovery
    from peftspace.sweep.sweep import resolve_space

    quiet_optuna()
    schedule = make_schedule(training)
    lora_scaling = space_options.pop("lora_scaling")  # None: the protocol's default (racing: rslora)
    space = apply_space_options(resolve_space(start), space_options, model)
    plan = {"alpha": alpha, "delta": delta, "max_blocks": max_blocks, "first_look": first_look, "look_every": look_every}
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        jobs = {}

        def show(stage, counts, state=None):
            if stage not in jobs:
                jobs[stage] = bar.add_task(f"stage {stage}", total=counts["total"], counts="")
            text = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("complete", "failed", "running", "waiting"))
            if state is not None:
                text += f" | alive {', '.join(state.survivors)}" + (f"; {_intervals(state)}" if state.looks else "")
            bar.update(jobs[stage], completed=counts["complete"] + counts["failed"], total=counts["total"], counts=text)

        log = run_discovery(model, tasks, samples_per_space, start=space, stages=stages.split(","),
                            candidates=tuple(candidates.split(",")) if candidates else ALL_SUBSETS, name=name,
                            storage=run["storage"], out_dir=out, seed=run["seed"], schedule=schedule, data_dir=run["data_dir"],
                            workers=parse_workers(run["workers"]), threads=run["threads"], device=run["device"],
                            confidence=confidence, progress=show, protocol=protocol, plan=plan, replicates=replicates,
                            pool_size=pool_size, narrow=narrow, final_blocks=final_blocks, max_trials=max_trials, wait=wait,
                            lora_scaling=lora_scaling, mid_validation=training["mid_validation"],
                            fidelity_check=fidelity_check)
    print_decisions(log)


def _intervals(state) -> str:
    look = state.looks[-1]
    alive = set(state.survivors)
    return " ".join(f"{p.a}-{p.b} [{p.interval[0]:+.2f},{p.interval[1]:+.2f}]" for p in look.pairs if {p.a, p.b} <= alive)


def print_decisions(log: dict) -> None:
    from rich.table import Table

    table = Table(title=f"discovery {log['name']}: {log['model']} on {', '.join(log['tasks'])} "
                        f"({log.get('protocol', 'paper')} protocol)")
    for column in ("stage", "component", "options", "winner", "verdict", "trials"):
        table.add_column(column)
    for entry in log["stages"]:
        if entry.get("protocol") == "racing":
            options, verdict = _race_cells(entry)
        elif entry.get("ranking"):
            ranking = entry["ranking"]
            options = ", ".join(f"{o['name']} {o['mean']:.2f} ({o['n']})" for o in ranking["options"])
            difference = ranking["difference"]
            verdict = f"{entry['verdict']} (runner-up - best: [{difference['low']:.2f}, {difference['high']:.2f}])"
        else:
            options, verdict = ", ".join(entry["options"]), entry["verdict"] or ""
        used = (entry.get("trials") or {}).get("used", "")
        table.add_row(entry["stage"], entry["title"], options, str(entry["winner"]), verdict, str(used))
    console.print(table)
    schedule = log.get("schedule") or {}
    multipliers = {k: v for k, v in (schedule.get("lr_multipliers") or {}).items() if v != 1.0}
    console.print(f"learning rate {schedule.get('learning_rate')}, per-strategy multipliers "
                  f"{multipliers or 'none (all 1)'}; LoRA scaling {(log.get('start') or {}).get('options', {}).get('lora_scaling')}")
    check = log.get("fidelity_result")
    if check:
        rho = check.get("spearman")
        line = f"fidelity check ({check['designs']} designs, {check['factor']}x longer): " + \
            (f"Spearman {rho:.2f}" if rho is not None else check.get("why", "not finished"))
        console.print(("[yellow]warning[/yellow]: " if check.get("warning") else "") + line +
                      (" < 0.8: decisions may depend on the schedule" if check.get("warning") else ""))
    for entry in log["stages"]:
        fidelity = entry.get("fidelity")
        if fidelity and fidelity.get("warning"):
            console.print(f"[yellow]warning[/yellow]: stage {entry['stage']}: mid-training and final validation errors "
                          f"correlate at Spearman {fidelity['spearman_mid_final']:.2f} < 0.8: decisions may depend on the schedule")
    best = log.get("best")
    if best:
        error = best.get("validation_error", best.get("error"))
        console.print(f"best design trained: validation error {error:.2f}, test error {best['error']:.2f} "
                      f"({best['study']}, trial {best['trial']})")
    if log.get("final_design"):
        design = log["final_design"]
        console.print(f"discovered design ({log['final_rule']}): {design['strategies']}, grouping {design['grouping']}, "
                      f"allocation {design['allocation']}, tuned {design.get('tuned_groups') or 'all'}")


def _race_cells(entry: dict) -> tuple[str, str]:
    race = entry.get("race") or {}
    means = race.get("means") or {}
    aliases = entry.get("aliases") or {}
    names = []
    for option in entry.get("raced") or entry.get("options") or ():
        alias = [a for a, r in aliases.items() if r == option]
        mean = f" {means[option]:.2f}" if option in means else ""
        names.append(option + (f" (= {', '.join(alias)})" if alias else "") + mean)
    out = [f"{o} (out at look {look['number']}, by {by})" for look in race.get("looks") or () for o, by in look["eliminated"].items()]
    verdict = f"{entry.get('verdict')}: {entry.get('why') or ''}"
    if race.get("looks"):
        last = race["looks"][-1]
        alive = set(race.get("survivors") or ())
        verdict += "; " + " ".join(f"{p['a']}-{p['b']} [{p['interval'][0]:+.2f}, {p['interval'][1]:+.2f}]"
                                   for p in last["pairs"] if {p["a"], p["b"]} <= alive)
    return ", ".join(names + out), verdict
