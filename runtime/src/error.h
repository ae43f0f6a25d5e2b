// Per-thread error message behind sdrop_last_error(), and the one way the runtime fails.
#pragma once

#include "sdrop/sdrop.h"

namespace sdrop {

// Records a printf-style message for this thread and returns `status`.
sdrop_status fail(sdrop_status status, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char* last_error();

}  // namespace sdrop
