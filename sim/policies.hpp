// The policies the simulator knows, by name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sim/policy.hpp"

namespace powergrad::sim {

// Names in report order.
const std::vector<std::string> &policy_names();
bool is_policy_name(const std::string &name);

// nullptr for an unknown name. `truth` is used by the oracles only.
std::unique_ptr<Policy> make_policy(const std::string &name, const ClusterSpec &spec,
                                    const Truth &truth);

}  // namespace powergrad::sim
