"""Design commands: plan (config only), build (apply to a real model), presets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from peftspace.cli._common import BUDGET, DESIGN, MODEL, app, console, resolve_design
from peftspace.design import STRATEGY_NAMES, Plan


def plan_table(plan: Plan) -> Table:
    title = plan.design.name or "design"
    table = Table(title=f"{title} on {plan.model_type}: parameters per layer and strategy")
    for column in ("layer", "stack", "group", "sizes", "budget", "A", "P", "B", "L", "total"):
        table.add_column(column, justify="left" if column in ("stack", "sizes") else "right")
    planned = {layer.index: layer for layer in plan.layers}
    last = max([g[1] for g in plan.groups], default=-1)
    group_of = {i: g for g, (first, end) in enumerate(plan.groups) for i in range(first, end + 1)}
    for index in range(last + 1):
        layer = planned.get(index)
        if layer is None:
            table.add_row(str(index), "", str(group_of[index]), "[dim]frozen[/dim]", "0", "", "", "", "", "0")
            continue
        cells = [f"{layer.counts[s]:,}" if s in layer.counts else "" for s in ("A", "P", "B", "L")]
        table.add_row(str(index), layer.stack[:3], str(layer.group), layer.describe(), f"{layer.budget:,}", *cells, f"{layer.total:,}")
    return table


def print_plan(plan: Plan, actual: int | None = None) -> None:
    console.print(plan_table(plan))
    console.print(f"backbone    {plan.backbone_parameters:>12,}  parameters, task heads excluded")
    console.print(f"budget      {plan.budget:>12,}  ({100 * plan.budget / plan.backbone_parameters:.3f}% of the backbone)")
    console.print(f"planned     {plan.total:>12,}  ({100 * plan.fraction:.3f}%): " +
                  ", ".join(f"{STRATEGY_NAMES[s]} {n:,}" for s, n in plan.strategy_totals().items()))
    if plan.training_total != plan.total:
        console.print(f"training    {plan.training_total:>12,}  (prefix MLP reparameterization)")
    if actual is not None:
        status = "[green]matches the plan[/green]" if actual == plan.training_total else "[red]differs from the plan[/red]"
        console.print(f"trainable   {actual:>12,}  counted on the model after apply: {status}")
    for note in plan.notes:
        console.print(f"[yellow]note[/yellow]: {note}")


@app.command()
def plan(model: str = MODEL, design: str = DESIGN, budget: float = BUDGET) -> None:
    """Plan a design on a model's config (no weights loaded): per-layer strategies, sizes, counts."""
    from peftspace.api import plan as make_plan
    from peftspace.models import load_config

    print_plan(make_plan(load_config(model), resolve_design(design, budget)))
    console.print("[dim]sizes: A adapter bottleneck, P prefix length, B BitFit (fixed), L LoRA rank[/dim]")


@app.command()
def build(model: str = MODEL, design: str = DESIGN, budget: float = BUDGET,
          save: Path = typer.Option(None, "--save", help="Save the (untrained) design here.")) -> None:
    """Load a model, apply a design, and print its plan with the real trainable count."""
    from transformers.utils import logging as hf_logging

    import peftspace
    from peftspace.models import load_backbone

    hf_logging.disable_progress_bar()
    backbone = load_backbone(model)
    the_plan = peftspace.apply(backbone, resolve_design(design, budget))
    print_plan(the_plan, actual=sum(p.numel() for p in backbone.parameters() if p.requires_grad))
    if save is not None:
        peftspace.save(backbone, save)
        console.print(f"saved to {save}")
    console.print("[dim]sizes: A adapter bottleneck, P prefix length, B BitFit (fixed), L LoRA rank[/dim]")


@app.command()
def presets() -> None:
    """List the built-in designs."""
    from peftspace.design.presets import PRESETS

    table = Table(title="presets")
    table.add_column("name")
    table.add_column("description")
    for name, design in PRESETS.items():
        table.add_row(name, design.description)
    console.print(table)
