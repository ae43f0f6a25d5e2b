// Per-thread error message behind sdrop_last_error(), and the one way the runtime fails.
#pragma once

#include "sdrop/sdrop.h"

namespace sdrop {

// Records a printf-style message for this thread and returns `status`.
sdrop_status fail(sdrop_status status, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char* last_error();

// "SDROP_OK", "SDROP_ERROR_INVALID_ARGUMENT", ...; "SDROP_STATUS_UNKNOWN" for other values.
const char* status_name(sdrop_status s);

}  // namespace sdrop
