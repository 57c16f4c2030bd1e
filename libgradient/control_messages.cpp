#include "libgradient/control_messages.hpp"

namespace powergrad {

const char *to_string(JobMode mode) {
  switch (mode) {
    case JobMode::latency:
      return "latency";
    case JobMode::throughput:
      return "throughput";
    case JobMode::monitor:
      return "monitor";
    case JobMode::unmanaged:
      return "unmanaged";
  }
  return "unknown";
}

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
