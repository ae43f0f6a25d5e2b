#include "error.h"

#include <cstdarg>
#include <cstdio>

namespace sdrop {
namespace {
// Trivially destructible, so thread_local needs no libstdc++ support.
thread_local char g_message[1024] = "";
}  // namespace

sdrop_status fail(sdrop_status status, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(g_message, sizeof g_message, fmt, args);
  va_end(args);
  return status;
}

const char* last_error() { return g_message; }

const char* status_name(sdrop_status s) {
  switch (s) {
    case SDROP_OK: return "SDROP_OK";
    case SDROP_ERROR_INVALID_ARGUMENT: return "SDROP_ERROR_INVALID_ARGUMENT";
    case SDROP_ERROR_UNSUPPORTED: return "SDROP_ERROR_UNSUPPORTED";
    case SDROP_ERROR_BACKEND_UNAVAILABLE: return "SDROP_ERROR_BACKEND_UNAVAILABLE";
    case SDROP_ERROR_OUT_OF_MEMORY: return "SDROP_ERROR_OUT_OF_MEMORY";
    case SDROP_ERROR_INTERNAL: return "SDROP_ERROR_INTERNAL";
  }
  return "SDROP_STATUS_UNKNOWN";
}

}  // namespace sdrop
