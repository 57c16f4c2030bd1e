#include "nodeagent/step_event.hpp"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <vector>

namespace powergrad {

namespace {

bool parse_u64(const std::string &s, unsigned long long max, unsigned long long &out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno != 0 || v > max) return false;
  out = v;
  return true;
}

bool valid_step(const std::string &s) {
  if (s == "batch" || s == "extern" || s == "interactive") return true;
  unsigned long long v = 0;
  return parse_u64(s, UINT32_MAX, v);
}

}  // namespace

const char *to_string(StepOp op) {
  switch (op) {
    case StepOp::task_start:
      return "task_start";
    case StepOp::task_exit:
      return "task_exit";
    case StepOp::step_end:
      return "step_end";
  }
  return "?";
}

std::string format_step_event(const StepEvent &e) {
  std::string s = "v=1 op=";
  s += to_string(e.op);
  s += " job=" + std::to_string(e.job_id) + " step=" + e.step;
  if (e.op != StepOp::step_end) s += " pid=" + std::to_string(e.pid);
  if (e.op == StepOp::task_start) s += std::string(" mode=") + powergrad::to_string(e.mode);
  return s;
}

StepEventParse parse_step_event(const std::string &text) {
  StepEventParse out;
  auto fail = [&out](std::string why) {
    out.error = std::move(why);
    return out;
  };
  if (text.size() > kMaxStepEventBytes) return fail("message longer than 512 bytes");
  std::string version, op, job, step, pid, mode;
  std::vector<std::pair<const char *, std::string *>> keys = {
      {"v", &version}, {"op", &op}, {"job", &job}, {"step", &step}, {"pid", &pid}, {"mode", &mode}};
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return fail("field '" + item + "' is not key=value");
    const std::string k = item.substr(0, eq);
    bool known = false;
    for (auto &kv : keys) {
      if (k == kv.first) {
        if (!kv.second->empty()) return fail("field '" + k + "' given twice");
        *kv.second = item.substr(eq + 1);
        if (kv.second->empty()) return fail("field '" + k + "' is empty");
        known = true;
      }
    }
    if (!known) return fail("unknown field '" + k + "'");
  }
  if (version != "1")
    return fail(version.empty() ? "no version (v=1)" : "unsupported version v=" + version);
  StepEvent e;
  if (op == "task_start") {
    e.op = StepOp::task_start;
  } else if (op == "task_exit") {
    e.op = StepOp::task_exit;
  } else if (op == "step_end") {
    e.op = StepOp::step_end;
  } else {
    return fail(op.empty() ? "no op" : "unknown op '" + op + "'");
  }
  unsigned long long v = 0;
  if (!parse_u64(job, UINT32_MAX, v) || v == 0) return fail("bad job id '" + job + "'");
  e.job_id = static_cast<uint32_t>(v);
  if (!valid_step(step)) return fail("bad step '" + step + "'");
  e.step = step;
  if (e.op == StepOp::step_end) {
    if (!pid.empty()) return fail("step_end takes no pid");
  } else {
    if (!parse_u64(pid, INT_MAX, v) || v < 2) return fail("bad pid '" + pid + "'");
    e.pid = static_cast<pid_t>(v);
  }
  if (e.op == StepOp::task_start) {
    const auto m = job_mode_from_name(mode);
    if (!m) return fail("bad mode '" + mode + "'");
    e.mode = *m;
  } else if (!mode.empty()) {
    return fail(std::string(to_string(e.op)) + " takes no mode");
  }
  out.event = e;
  return out;
}

}  // namespace powergrad
