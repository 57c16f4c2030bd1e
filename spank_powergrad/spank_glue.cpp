#include "spank_powergrad/spank_glue.hpp"

#include <cstdio>

namespace powergrad {

SpankState &spank_state() {
  static SpankState state;
  return state;
}

namespace {

// slurm_error/slurm_info take a format; format once here so the prefix is never forgotten.
void vformat(char *buf, size_t len, const char *fmt, va_list ap) {
  std::vsnprintf(buf, len, fmt, ap);
}

}  // namespace

void log_error(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vformat(buf, sizeof buf, fmt, ap);
  va_end(ap);
  slurm_error("powergrad: %s", buf);
}

void log_info(const char *fmt, ...) {
  if (spank_state().config.log_level == LogLevel::quiet) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vformat(buf, sizeof buf, fmt, ap);
  va_end(ap);
  slurm_info("powergrad: %s", buf);
}

void log_debug(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vformat(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (spank_state().config.log_level == LogLevel::debug) {
    slurm_info("powergrad: %s", buf);
  } else {
    slurm_debug("powergrad: %s", buf);
  }
}

}  // namespace powergrad
