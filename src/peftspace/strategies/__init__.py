"""The four strategies; dispatch by letter. Each ``apply(block, size, options)`` returns its modules."""

from peftspace.strategies import adapter, bitfit, lora, prefix

# Application order matters where two strategies hook one module (see _hooks.py).
STRATEGY_MODULES = {"B": bitfit, "L": lora, "P": prefix, "A": adapter}
