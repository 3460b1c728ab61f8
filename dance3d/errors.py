"""User-facing errors: the CLI prints these as one clear message, never a traceback."""


class Dance3dError(Exception):
    """A problem the user can fix (bad input, bad config, missing file)."""


class ConfigError(Dance3dError):
    """A configuration value is missing, unknown or of the wrong type."""


class DataError(Dance3dError):
    """A dataset or a video file cannot be used; the message names the file."""


class CheckpointError(Dance3dError):
    """A checkpoint or weights file is missing, corrupt or does not match the model."""
