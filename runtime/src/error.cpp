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

}  // namespace sdrop
