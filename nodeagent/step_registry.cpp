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

bool StepRegistry::has_power_aware_step() const {
  for (const auto &kv : steps_) {
    if (kv.second.power_aware()) return true;
  }
  return false;
}

}  // namespace powergrad
