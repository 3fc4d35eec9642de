"""The one exception type the engines raise for bad input, missing checkpoints and the like."""


class EngineError(ValueError):
    """Bad input or an unusable checkpoint. The message says what to do about it."""
