// Numbers in libgradient's error messages: short (%.6g), units attached.
#pragma once

#include <cstdio>
#include <string>

namespace powergrad {

inline std::string format_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

inline std::string format_w(double watts) { return format_number(watts) + " W"; }

}  // namespace powergrad
