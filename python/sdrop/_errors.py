"""The exceptions a failed libsdrop call raises, one per status of the C ABI.

The status codes and names are the C header's (sdrop_status, sdrop_status_name), read from the
native module; each exception subclasses the Python built-in a caller would expect
(ValueError for an invalid argument, TypeError/NotImplementedError for a valid array sdrop
cannot run, MemoryError, RuntimeError) and carries sdrop_last_error()'s message."""
from __future__ import annotations

import enum

from . import _sdrop

# sdrop_status, with the header's names and values.
Status = enum.IntEnum("Status", {name: code for code, name in _sdrop.statuses().items()})
Status.__doc__ = "sdrop_status of the C ABI (names and values from sdrop.h)."


class SdropError(Exception):
    """Base of every error raised from a failed libsdrop call; .status is the C status."""

    status = Status.SDROP_ERROR_INTERNAL


class SdropInvalidArgument(SdropError, ValueError):
    status = Status.SDROP_ERROR_INVALID_ARGUMENT


class SdropUnsupported(SdropError, TypeError, NotImplementedError):
    status = Status.SDROP_ERROR_UNSUPPORTED


class SdropBackendUnavailable(SdropError, RuntimeError):
    status = Status.SDROP_ERROR_BACKEND_UNAVAILABLE


class SdropOutOfMemory(SdropError, MemoryError):
    status = Status.SDROP_ERROR_OUT_OF_MEMORY


class SdropInternalError(SdropError, RuntimeError):
    status = Status.SDROP_ERROR_INTERNAL


_sdrop.set_error_types({int(c.status): c for c in (
    SdropInvalidArgument, SdropUnsupported, SdropBackendUnavailable, SdropOutOfMemory,
    SdropInternalError)})
