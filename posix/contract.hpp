// Contract checks: a broken precondition is a defect of PowerGrad, never the caller's input.
//
// PowerGrad runs inside slurmd, slurmstepd and slurmctld, so a defect must not take them
// down: PG_CONTRACT throws ContractViolation, which the entry points' exception firewalls
// (SPANK callbacks, the agent thread, the controller thread) log and survive, the work at
// hand failing. Builds configured with --enable-debug (PG_DEBUG) abort at once instead, with
// the place and the message, so tests and developers see the defect where it happened.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace powergrad {

class ContractViolation : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

[[noreturn]] inline void contract_failed(const char *file, int line, const std::string &what) {
  const std::string msg =
      std::string("PowerGrad defect at ") + file + ":" + std::to_string(line) + ": " + what;
#ifdef PG_DEBUG
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::abort();
#else
  throw ContractViolation(msg);
#endif
}

}  // namespace powergrad

#define PG_CONTRACT(cond, what)                                            \
  do {                                                                     \
    if (!(cond)) ::powergrad::contract_failed(__FILE__, __LINE__, (what)); \
  } while (0)
