// What slurmstepd tells the node agent about power-aware (and plain) steps: one small text
// message per event, so it is easy to log, test and fuzz.
//
//   v=1 op=task_start job=123 step=0 pid=4567 mode=latency
//   v=1 op=task_exit job=123 step=0 pid=4567
//   v=1 op=step_end job=123 step=0
//
// Fields are space-separated key=value pairs; keys are fixed, unknown keys are an error.
// step is a number or batch/extern/interactive. A message is at most kMaxStepEventBytes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "libgradient/job_mode.hpp"

namespace powergrad {

constexpr std::size_t kMaxStepEventBytes = 512;

enum class StepOp { task_start, task_exit, step_end };

struct StepEvent {
  StepOp op = StepOp::task_start;
  uint32_t job_id = 0;
  std::string step;  // "0", "1", ..., "batch", "extern", "interactive"
  pid_t pid = 0;     // task_start, task_exit
  JobMode mode = JobMode::off;  // task_start (off: counted, not steered)
};

struct StepEventParse {
  std::optional<StepEvent> event;
  std::string error;  // names the field and the problem
};

std::string format_step_event(const StepEvent &e);
StepEventParse parse_step_event(const std::string &text);

const char *to_string(StepOp op);

}  // namespace powergrad
