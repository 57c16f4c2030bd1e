#include "libgradient/control_messages.hpp"

namespace powergrad {

const char *to_string(CounterKind kind) {
  switch (kind) {
    case CounterKind::none:
      return "none";
    case CounterKind::software:
      return "software";
    case CounterKind::hardware:
      return "hardware";
    case CounterKind::emulated:
      return "emulated";
  }
  return "unknown";
}

}  // namespace powergrad
