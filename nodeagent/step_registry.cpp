#include "nodeagent/step_registry.hpp"

namespace powergrad {

std::string StepRegistry::apply(const StepEvent &e, double now_s) {
  const Key key{e.job_id, e.step};
  auto it = steps_.find(key);
  switch (e.op) {
    case StepOp::task_start: {
      if (it == steps_.end()) {
        if (steps_.size() >= limits_.max_steps) {
          return "registry full (" + std::to_string(limits_.max_steps) + " steps)";
        }
        RegisteredStep s;
        s.job_id = e.job_id;
        s.step = e.step;
        s.mode = e.mode;
        s.registered_at_s = now_s;
        it = steps_.emplace(key, std::move(s)).first;
      }
      if (it->second.pids.size() >= limits_.max_pids_per_step && !it->second.pids.count(e.pid)) {
        return "step " + it->second.key() + " has too many tasks";
      }
      // The option callback may run twice in a stepd: a repeated start is harmless.
      it->second.pids.insert(e.pid);
      return "";
    }
    case StepOp::task_exit:
      if (it != steps_.end()) {
        it->second.pids.erase(e.pid);
        if (it->second.pids.empty()) steps_.erase(it);
      }
      return "";
    case StepOp::step_end:
      if (it != steps_.end()) steps_.erase(it);
      return "";
  }
  return "unknown event";
}

std::vector<std::string> StepRegistry::reap(const std::function<bool(pid_t)> &alive) {
  std::vector<std::string> dropped;
  for (auto it = steps_.begin(); it != steps_.end();) {
    for (auto p = it->second.pids.begin(); p != it->second.pids.end();) {
      p = alive(*p) ? std::next(p) : it->second.pids.erase(p);
    }
    if (it->second.pids.empty()) {
      dropped.push_back(it->second.key());
      it = steps_.erase(it);
    } else {
      ++it;
    }
  }
  return dropped;
}

std::vector<RegisteredStep> StepRegistry::steps() const {
  std::vector<RegisteredStep> out;
  out.reserve(steps_.size());
  for (const auto &kv : steps_) out.push_back(kv.second);
  return out;
}

std::string StepRegistry::serialize(
    const std::vector<RegisteredStep> &steps,
    const std::function<std::optional<std::uint64_t>(pid_t)> &start_ticks) {
  std::string out = "powergrad-steps 1\n";
  for (const RegisteredStep &s : steps) {
    for (pid_t p : s.pids) {
      const std::optional<std::uint64_t> ticks = start_ticks(p);
      if (!ticks) continue;
      StepEvent e;
      e.op = StepOp::task_start;
      e.job_id = s.job_id;
      e.step = s.step;
      e.pid = p;
      e.mode = s.mode;
      out += std::to_string(*ticks) + " " + format_step_event(e) + "\n";
    }
  }
  out += "end\n";
  return out;
}

RegistryFileParse parse_registry_file(const std::string &text) {
  RegistryFileParse r;
  std::size_t pos = 0;
  int line_no = 0;
  bool have_header = false, have_end = false;
  auto fail = [&](const std::string &why) {
    r.tasks.clear();
    r.error = "line " + std::to_string(line_no) + ": " + why;
    return r;
  };
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      ++line_no;
      return fail("no newline at the end: the file is cut short");
    }
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (have_end) return fail("text after the end line");
    if (!have_header) {
      if (line != "powergrad-steps 1") return fail("not a registry file of version 1");
      have_header = true;
      continue;
    }
    if (line == "end") {
      have_end = true;
      continue;
    }
    const std::size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string::npos || sp > 19)
      return fail("expected '<start time> <event>'");
    std::uint64_t ticks = 0;
    for (std::size_t i = 0; i < sp; ++i) {
      const char c = line[i];
      if (c < '0' || c > '9')
        return fail("start time '" + line.substr(0, sp) + "' is not a number");
      ticks = ticks * 10 + static_cast<std::uint64_t>(c - '0');
    }
    StepEventParse e = parse_step_event(line.substr(sp + 1));
    if (!e.event) return fail(e.error);
    if (e.event->op != StepOp::task_start) return fail("not a task_start event");
    r.tasks.push_back({*e.event, ticks});
  }
  if (!have_header) return fail("empty file");
  if (!have_end) return fail("no end line: the file is cut short");
  return r;
}

bool StepRegistry::has_power_aware_step() const {
  for (const auto &kv : steps_) {
    if (kv.second.power_aware()) return true;
  }
  return false;
}

}  // namespace powergrad
