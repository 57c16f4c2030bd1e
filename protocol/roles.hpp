// Which message types each side of each kind of session may send. Both endpoints check
// them: the receiver when a header arrives (FrameReader's accepted set, so a node cannot
// even get an ADMIN_SET_BUDGET buffered), the sender before sealing (a local bug fails
// locally instead of tearing down the session).
#pragma once

#include "protocol/frame.hpp"
#include "protocol/messages.hpp"

namespace powergrad::proto {

// What a client sends once its session is open.
inline TypeSet client_sends(PeerRole role) {
  return role == PeerRole::node
             ? TypeSet{MsgType::report, MsgType::node_caps, MsgType::error}
             : TypeSet{MsgType::admin_status_req, MsgType::admin_set_budget, MsgType::error};
}

// What the controller sends on an open session of that role.
inline TypeSet server_sends(PeerRole role) {
  return role == PeerRole::node
             ? TypeSet{MsgType::grant, MsgType::error}
             : TypeSet{MsgType::admin_status, MsgType::admin_result, MsgType::error};
}

// Before a session: the controller takes only a HELLO, the client only its answer.
inline TypeSet server_accepts_before_session() { return TypeSet{MsgType::hello}; }
inline TypeSet client_accepts_before_session() { return TypeSet{MsgType::welcome, MsgType::error}; }

}  // namespace powergrad::proto
