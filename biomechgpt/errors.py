"""The project's error for bad input, owned here so library code and the command line raise the same class.

`biomechgpt.cli` prints a `UsageError` as one line and exits with status 2; library functions (the pipeline, the
evaluation) raise it without importing the command line. Errors that belong to one stage stay with it:
`MotionInputError` in `biomechgpt.processing.motion` (that file ships as Hub remote code, which cannot import this
package) and `ReleaseError` in `biomechgpt.release`.
"""

__all__ = ["UsageError"]


class UsageError(Exception):
    """A bad command-line argument or input; printed as one line, exit status 2."""
