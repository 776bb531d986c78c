"""The strategy library: one module per strategy, each registered with ``@register``."""
