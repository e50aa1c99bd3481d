"""Errors the CLI turns into one line and an exit code, never a traceback."""

__all__ = ["BadInput", "DoesNotFit", "VerificationFailed", "VitfpgaError"]


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
