"""ctypes bindings of libsdrop's C ABI (runtime/include/sdrop/sdrop.h) and DLPack plumbing."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import pathlib

__all__ = ["lib", "library_path", "DLTensor", "SdropParams", "check", "SdropError"]


# ---- DLPack structs (layout identical in DLPack 0.6 .. 1.x for DLTensor) --------------------
class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class SdropParams(ctypes.Structure):
    _fields_ = [
        ("p", ctypes.c_double),
        ("seed", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("mask_axes", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    ]


SDROP_OK = 0
SDROP_ERROR_INVALID_ARGUMENT = 1
SDROP_ERROR_UNSUPPORTED = 2
SDROP_ERROR_BACKEND_UNAVAILABLE = 3
SDROP_ERROR_OUT_OF_MEMORY = 4
SDROP_ERROR_INTERNAL = 5
SDROP_FLAG_MULTIPLY = 1
SDROP_CHANNELS_FIRST = 0
SDROP_CHANNELS_LAST = 1


# ---- exceptions --------------------------------------------------------------------------------
class SdropError(Exception):
    """Base of every error raised from a failed libsdrop call; .status is the C status."""

    status = SDROP_ERROR_INTERNAL


class SdropInvalidArgument(SdropError, ValueError):
    status = SDROP_ERROR_INVALID_ARGUMENT


class SdropUnsupported(SdropError, TypeError, NotImplementedError):
    status = SDROP_ERROR_UNSUPPORTED


class SdropBackendUnavailable(SdropError, RuntimeError):
    status = SDROP_ERROR_BACKEND_UNAVAILABLE


class SdropOutOfMemory(SdropError, MemoryError):
    status = SDROP_ERROR_OUT_OF_MEMORY


class SdropInternalError(SdropError, RuntimeError):
    status = SDROP_ERROR_INTERNAL


_EXC = {
    SDROP_ERROR_INVALID_ARGUMENT: SdropInvalidArgument,
    SDROP_ERROR_UNSUPPORTED: SdropUnsupported,
    SDROP_ERROR_BACKEND_UNAVAILABLE: SdropBackendUnavailable,
    SDROP_ERROR_OUT_OF_MEMORY: SdropOutOfMemory,
}


# ---- locating and loading the library ------------------------------------------------------------
_HERE = pathlib.Path(__file__).resolve().parent
_NAMES = ("libsdrop.so", "libsdrop.so.0", "libsdrop.dylib", "sdrop.dll")


def _candidates():
    env = os.environ.get("SDROP_LIBRARY")
    if env:
        yield env  # explicit: used even if it fails to load (error says so)
        return
    for n in _NAMES:  # a copy packaged next to the module
        yield str(_HERE / n)
    for n in _NAMES:  # the repository's build tree (python/sdrop -> <repo>/build/release/lib)
        yield str(_HERE.parent.parent / "build" / "release" / "lib" / n)
    found = ctypes.util.find_library("sdrop")
    if found:
        yield found


def _load():
    errors = []
    env = os.environ.get("SDROP_LIBRARY")
    for cand in _candidates():
        if not env and os.sep in cand and not os.path.exists(cand):
            continue
        try:
            return ctypes.CDLL(cand), cand
        except OSError as e:
            errors.append(f"{cand}: {e}")
    raise ImportError(
        "sdrop: cannot load libsdrop.so; set SDROP_LIBRARY=/path/to/libsdrop.so, copy it next to "
        "the sdrop package, or install it in a directory the dynamic loader searches"
        + ("".join("\n  " + e for e in errors))
    )


lib, library_path = _load()

_P = ctypes.POINTER
_T = _P(DLTensor)
_PP = _P(SdropParams)
_sig = {
    "sdrop_spatial_axes": (ctypes.c_uint32, [ctypes.c_int32, ctypes.c_int]),
    "sdrop_forward": (ctypes.c_int, [_PP, _T, _T]),
    "sdrop_backward": (ctypes.c_int, [_PP, _T, _T]),
    "sdrop_mask": (ctypes.c_int, [_PP, _T]),
    "sdrop_apply_mask": (ctypes.c_int, [_PP, _T, _T, _T]),
    "sdrop_last_error": (ctypes.c_char_p, []),
    "sdrop_set_num_threads": (None, [ctypes.c_int]),
    "sdrop_get_num_threads": (ctypes.c_int, []),
    "sdrop_version": (ctypes.c_char_p, []),
    "sdrop_set_max_cpu_isa": (ctypes.c_int, [ctypes.c_int]),
    "sdrop_get_max_cpu_isa": (ctypes.c_int, []),
    "sdrop_get_cpu_isa": (ctypes.c_int, []),
    "sdrop_get_host_cpu_isa": (ctypes.c_int, []),
    "sdrop_cpu_isa_name": (ctypes.c_char_p, [ctypes.c_int]),
    "sdrop_set_cuda_stream": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]),
    "sdrop_set_opencl_queue": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]),
}
for _name, (_res, _args) in _sig.items():
    _f = getattr(lib, _name, None)
    if _f is not None:
        _f.restype = _res
        _f.argtypes = _args


def last_error() -> str:
    return (lib.sdrop_last_error() or b"").decode("utf-8", "replace")


def check(status: int, what: str = "sdrop") -> None:
    if status == SDROP_OK:
        return
    msg = last_error() or f"{what} failed with status {status}"
    raise _EXC.get(status, SdropInternalError)(msg)


# ---- DLPack capsules ------------------------------------------------------------------------------
_api = ctypes.pythonapi
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]


def capsule_tensor(capsule) -> ctypes.c_void_p:
    """The DLTensor* inside an unconsumed "dltensor" capsule (DLManagedTensor's first member).

    The capsule is NOT renamed, so its destructor still calls the producer's deleter when the
    capsule is collected: the caller must keep the capsule alive while the pointer is in use."""
    if not _api.PyCapsule_IsValid(capsule, b"dltensor"):
        raise TypeError("__dlpack__() did not return an unconsumed 'dltensor' capsule "
                        "(DLPack >= 1.0 'dltensor_versioned' capsules are not supported)")
    ptr = _api.PyCapsule_GetPointer(capsule, b"dltensor")
    if not ptr:
        raise TypeError("empty DLPack capsule")
    return ptr
