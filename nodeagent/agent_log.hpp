// How the node agent logs: a function the host (slurmd's SPANK plugin, a test) hands in.
#pragma once

#include <functional>
#include <string>

namespace powergrad {

enum class AgentLogLevel { error, info, debug };
using AgentLog = std::function<void(AgentLogLevel, const std::string &)>;

}  // namespace powergrad
