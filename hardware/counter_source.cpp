#include "hardware/counter_source.hpp"

namespace powergrad::hw {

const char *to_string(CounterMode mode) {
  switch (mode) {
    case CounterMode::hardware:
      return "hardware";
    case CounterMode::software:
      return "software";
    case CounterMode::emulated:
      return "emulated";
  }
  return "?";
}

}  // namespace powergrad::hw
