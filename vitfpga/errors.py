"""Errors the CLI turns into one line and an exit code, never a traceback.

Exit codes: 0 success; 1 verification failed (hardware and golden disagree, or a static check
of a project failed); 2 bad input (usage, config, missing tool, does not fit); 3 internal error
(a bug in vitfpga: an unexpected exception); 4 a tool vitfpga drives failed on valid input (an
exporter crash); 130 interrupted.
"""

__all__ = ["BadInput", "DoesNotFit", "ToolFailed", "VerificationFailed", "VitfpgaError"]


class VitfpgaError(Exception):
    """Base class: the message is the whole story, shown as one line."""

    exit_code = 2


class BadInput(VitfpgaError):
    """Usage, config, checkpoint or option problems the user can fix."""

    exit_code = 2


class DoesNotFit(VitfpgaError):
    """The model cannot be mapped onto the chosen board; the message says by how much."""

    exit_code = 2


class VerificationFailed(VitfpgaError):
    """Hardware and golden disagree, or nothing was compared."""

    exit_code = 1


class ToolFailed(VitfpgaError):
    """A library or tool vitfpga drives (the QONNX exporter) failed on input vitfpga accepted:
    not the user's to fix by changing the input, and not a bug in vitfpga's own code either;
    the message names the tool and its error."""

    exit_code = 4
