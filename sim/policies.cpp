#include "sim/policies.hpp"

#include <algorithm>

#include "sim/policy_factories.hpp"

namespace powergrad::sim {

const std::vector<std::string> &policy_names() {
  static const std::vector<std::string> names = {
      "uniform", "usage", "pool", "powergrad", "oracle", "static-oracle", "delayed-oracle"};
  return names;
}

bool is_policy_name(const std::string &name) {
  const auto &names = policy_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::unique_ptr<Policy> make_policy(const std::string &name, const ClusterSpec &spec,
                                    const Truth &truth) {
  if (name == "uniform") return make_uniform_policy(spec);
  if (name == "usage") return make_usage_policy(spec);
  if (name == "pool") return make_pool_policy(spec);
  if (name == "powergrad") return make_powergrad_policy(spec);
  if (name == "oracle") return make_oracle_policy(spec, truth, false);
  if (name == "static-oracle") return make_oracle_policy(spec, truth, true);
  if (name == "delayed-oracle") return make_delayed_oracle_policy(spec, truth);
  return nullptr;
}

}  // namespace powergrad::sim
