// Constructors of the individual policies (sim/policies.cpp maps names to them).
#pragma once

#include <memory>

#include "libgradient/cluster_controller.hpp"
#include "sim/policy.hpp"

namespace powergrad::sim {

std::unique_ptr<Policy> make_uniform_policy(const ClusterSpec &spec);
std::unique_ptr<Policy> make_usage_policy(const ClusterSpec &spec);
std::unique_ptr<Policy> make_pool_policy(const ClusterSpec &spec);
std::unique_ptr<Policy> make_powergrad_policy(const ClusterSpec &spec);
// The cluster controller's configuration that the powergrad policy runs with: the scenario's
// budget at time 0, its groups with their limits, every node's floor and maximum (its
// sockets' minimum and maximum caps), plain share, period, lease and the baseline settings.
ClusterConfig powergrad_cluster_config(const ClusterSpec &spec);
std::unique_ptr<Policy> make_oracle_policy(const ClusterSpec &spec, const Truth &truth,
                                           bool hindsight);
// The oracle's targets moved over the scenario's transport delay as a safe controller moves
// them (decreases first, raises from the room they leave; policy_oracle.cpp).
std::unique_ptr<Policy> make_delayed_oracle_policy(const ClusterSpec &spec, const Truth &truth);

}  // namespace powergrad::sim
