// The two facts the node agent takes from slurm.conf: where slurmctld runs (the default
// controller address: the PowerGrad controller lives in slurmctld) and SlurmUser (whose
// WELCOME the agent trusts, with root's). Slurm-free: a plain reader of the file's text,
// since libslurm offers no public call for these in slurmd's plugin context.
#pragma once

#include <string>

namespace powergrad {

struct SlurmConfFacts {
  // The first SlurmctldHost (its address in parentheses when given: "name(addr)" -> addr),
  // else ControlAddr, else ControlMachine (old spellings). Empty when none.
  std::string ctld_host;
  std::string slurm_user;  // empty: not set (Slurm's default is root)
};

// Keys are case-insensitive; '#' starts a comment; "Include" lines are not followed.
SlurmConfFacts parse_slurm_conf(const std::string &text);

// $SLURM_CONF, else /etc/slurm/slurm.conf.
std::string slurm_conf_path();

// Reads and parses `path`. Returns "" or why not.
std::string read_slurm_conf(const std::string &path, SlurmConfFacts &out);

}  // namespace powergrad
