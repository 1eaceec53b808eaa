"""User-facing errors: the CLI prints these as one line (no traceback unless --debug)."""


class PnrError(Exception):
    """An error caused by the user's input or environment, with a message that says what to fix."""


class DataError(PnrError):
    """A dataset file is missing or malformed. The message names the file and the problem."""


class CheckpointError(PnrError):
    """A checkpoint is missing, corrupt, or from an incompatible version/config."""


class PromptError(PnrError):
    """A prompt is empty or uses words the chosen prior cannot represent."""


class NumericalError(PnrError):
    """NaN/Inf appeared during optimisation; the last good checkpoint is kept."""


class DeviceMemoryError(PnrError):
    """The GPU ran out of memory; the message names the settings that set the step's memory and their values."""
