// A fake HSMP mailbox for tests of the ioctl path: per socket a limit, a maximum, a firmware
// floor (the platform's cTDP minimum, which HSMP does not report) and a socket power, all in
// milliwatts as the firmware keeps them. SET clamps into [floor, max] as the SMU does; a
// chosen errno can be injected per message id. Every message is recorded.
#pragma once

#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hardware/hsmp.hpp"

namespace powergrad::hw::testing {

struct FakeHsmpState {
  struct Socket {
    std::uint32_t limit_mw = 360000;
    std::uint32_t max_mw = 400000;
    std::uint32_t floor_mw = 0;
    std::uint32_t power_mw = 95000;
  };
  std::vector<Socket> sockets = std::vector<Socket>(2);
  std::map<std::uint32_t, int> fail_with;  // msg id -> errno
  std::vector<HsmpMessage> sent;
};

class FakeHsmpDevice final : public HsmpDevice {
 public:
  explicit FakeHsmpDevice(std::shared_ptr<FakeHsmpState> state) : state_(std::move(state)) {}
  Status send(HsmpMessage &m) override {
    state_->sent.push_back(m);
    auto f = state_->fail_with.find(m.msg_id);
    if (f != state_->fail_with.end()) {
      return Status::failure(errno_error(
          "fake-hsmp",
          "message " + std::to_string(m.msg_id) + " (" + hsmp_errno_cause(f->second) + ")",
          f->second));
    }
    if (m.sock_ind >= state_->sockets.size()) {
      return Status::failure(errno_error("fake-hsmp", "bad socket", EINVAL));
    }
    FakeHsmpState::Socket &s = state_->sockets[m.sock_ind];
    switch (static_cast<HsmpMsg>(m.msg_id)) {
      case HsmpMsg::get_socket_power:
        m.args[0] = s.power_mw;
        break;
      case HsmpMsg::get_socket_power_limit:
        m.args[0] = s.limit_mw;
        break;
      case HsmpMsg::get_socket_power_limit_max:
        m.args[0] = s.max_mw;
        break;
      case HsmpMsg::set_socket_power_limit: {
        if (m.num_args != 1) return Status::failure(errno_error("fake-hsmp", "args", EINVAL));
        std::uint32_t v = m.args[0];
        if (v > s.max_mw) v = s.max_mw;
        if (v < s.floor_mw) v = s.floor_mw;
        s.limit_mw = v;
        break;
      }
      default:
        return Status::failure(errno_error("fake-hsmp", "unsupported message", ENOMSG));
    }
    return Status::success();
  }
  std::string describe() const override { return "fake-hsmp"; }

 private:
  std::shared_ptr<FakeHsmpState> state_;
};

}  // namespace powergrad::hw::testing
