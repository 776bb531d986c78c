"""The one error of the optimizer's Django shell."""


class OptimizationError(Exception):
    """A run cannot start or finish as asked; the message says why, for the trader."""
