// Constructors of the individual policies (sim/policies.cpp maps names to them).
#pragma once

#include <memory>

#include "sim/policy.hpp"

namespace powergrad::sim {

std::unique_ptr<Policy> make_uniform_policy(const ClusterSpec &spec);
std::unique_ptr<Policy> make_usage_policy(const ClusterSpec &spec);
std::unique_ptr<Policy> make_pool_policy(const ClusterSpec &spec);
std::unique_ptr<Policy> make_powergrad_policy(const ClusterSpec &spec);
std::unique_ptr<Policy> make_oracle_policy(const ClusterSpec &spec, const Truth &truth,
                                           bool hindsight);

}  // namespace powergrad::sim
