"""User-facing errors.

Anything that is the user's doing (a bad option, a missing file, an unknown name) is raised
as a ``GanctlError`` with one sentence that says what is wrong and, where it helps, what to
do. The CLI prints that sentence on stderr and exits non-zero, with no traceback.
"""


# Where an internal error (a bug) is to be reported; printed with it.
BUG_REPORTS = "the ganctl issue tracker"


class GanctlError(Exception):
    """An error whose message is meant for the user, as one line."""

    exit_code = 2
    is_error = True  # False: news the CLI prints plainly, without "Error:" (a run stopped by Ctrl-C)


class UnknownNameError(GanctlError, KeyError):
    """A name that no registry holds."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DuplicateNameError(GanctlError):
    """Two plugins registered the same name."""
