"""The four strategies; dispatch by letter. Each ``apply(block, size, options)`` returns its modules."""

from peftspace.strategies import adapter, bitfit, lora, prefix
from peftspace.strategies._hooks import attached

# Application order matters where two strategies hook one module (see _hooks.py).
STRATEGY_MODULES = {"B": bitfit, "L": lora, "P": prefix, "A": adapter}
# The module type each strategy's apply creates: what tells a model's strategy parameters apart.
STRATEGY_TYPES = {"B": bitfit.BiasDelta, "L": lora.LoRA, "P": prefix.Prefix, "A": adapter.Adapter}


def parameters_by_strategy(model) -> dict[str, list]:
    """The parameters of every strategy module attached to ``model``, by strategy letter (letters with none left out)."""
    found = {}
    for letter, kind in STRATEGY_TYPES.items():
        params = [p for _, _, module in attached(model, kind) for p in module.parameters()]
        if params:
            found[letter] = params
    return found
