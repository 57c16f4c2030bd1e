// `powergrad status` and `powergrad set-budget`: one admin session with the controller
// (protocol/PROTOCOL.md), and the formatting of the status it returns. The session and
// the clock are the caller's business here only through run_admin_request; the rest is
// plain text processing, tested on captured JSON.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "protocol/auth.hpp"
#include "protocol/messages.hpp"
#include "tools/json.hpp"

namespace powergrad {

struct ControllerAddress {
  std::string host;
  std::string port;
};

// "HOST:PORT", "[V6]:PORT"; nullopt with *error when malformed.
std::optional<ControllerAddress> parse_host_port(const std::string &text, std::string *error);

// powergrad.conf's location: $POWERGRAD_CONF, else powergrad.conf in the folder of
// $SLURM_CONF (default /etc/slurm/slurm.conf).
std::string default_powergrad_conf_path();

// The controller's address from powergrad.conf's Listen= (host and port). A wildcard
// listen host (0.0.0.0, ::, empty) gives an empty host: the caller uses slurmctld's host.
std::optional<ControllerAddress> address_from_conf(const std::string &conf_path,
                                                   std::string *error);

struct AdminRequestOptions {
  ControllerAddress address;
  std::string client_name;             // our host name, for the controller's log
  std::vector<uid_t> controller_uids;  // whose WELCOME to trust: root and SlurmUser
  double timeout_s = 10.0;
};

// Opens an admin session, sends `request`, waits for the answer (ADMIN_STATUS or
// ADMIN_RESULT). Returns the answer, or nullopt with *error naming what failed (cannot
// connect, refused with the controller's reason, timeout).
std::optional<proto::Message> run_admin_request(const AdminRequestOptions &options,
                                                proto::Authenticator &auth,
                                                const proto::Message &request,
                                                std::string *error);

// The status JSON as a human-readable summary and table of nodes.
std::string format_status_table(const json::Value &status);

}  // namespace powergrad
