"""Bad-input errors that `geodistill <command>` reports in one line, without a traceback.

    from geodistill.errors import FormatError      # also importable from the module that raises it

They live here, in a module that imports nothing, so that stages/common.py can catch them for
every command without making every stage depend (codedeps.py) on the modules that raise them.
"""


class FormatError(ValueError):
    """A label file or file name that is not in the dataset's format; the message names file and line."""


class ImageError(ValueError):
    """An image that cannot be used; the message names the file."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used for what was asked (missing, or of another method)."""
