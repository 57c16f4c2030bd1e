// Shared by the fuzz target and its seed-corpus generator: the input format and the key
// of the sealed-frame mode.
//
// An input's first byte picks what is fuzzed (mode = byte % kModes):
//   0  decode_frame on the rest (one whole frame)
//   1  decode_payload: the second byte picks the type, the rest is the payload
//   2  FrameReader on the rest, fed in chunks whose sizes come from the second byte,
//      every complete frame decoded
//   3  SecureChannel::open (server side, kFuzzKey, kFuzzSession) on the rest, then again
//      (a replay, which must be refused)
// Whatever decodes must re-encode to the same bytes (the format is canonical), but for
// NODE_CAPS without its optional trailing field (restore_failures), which gains it.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "libgradient/control_messages.hpp"
#include "protocol/mac.hpp"
#include "protocol/messages.hpp"

namespace pgfuzz {

constexpr unsigned kModes = 4;
constexpr std::uint64_t kFuzzSession = 0x5eed5eed5eed5eedull;

inline powergrad::proto::Key fuzz_key() {
  powergrad::proto::Key k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(0xa0 + i);
  return k;
}

// One valid message of every type, with the special values the format has (NaN power,
// +infinity lease end, empty and full curves).
inline std::vector<powergrad::proto::Message> seed_messages() {
  using namespace powergrad;
  using namespace powergrad::proto;
  std::vector<Message> out;
  Hello h;
  h.role = PeerRole::node;
  h.name = "n1";
  h.incarnation = 1700000000;
  for (std::size_t i = 0; i < h.nonce.size(); ++i) h.nonce[i] = static_cast<std::uint8_t>(i);
  h.credential = "MUNGE:AwQFAAB4ZmFrZWNyZWRlbnRpYWwK:";
  out.push_back(h);
  out.push_back(Welcome{"MUNGE:AwQFAAB4d2VsY29tZQo=:"});
  NodeReport r;
  r.node = "n1";
  r.incarnation = 1700000000;
  r.report_seq = 12;
  r.sent_at_s = 1234.5;
  r.started_at_s = 1100.0;
  r.lease_epoch = 2;
  r.lease_seq = 9;
  r.lease_grant_w = 300;
  r.lease_expires_at_s = 1240;
  r.effective_grant_w = 290;
  r.min_w = 100;
  r.max_w = 400;
  r.need_w = 120;
  r.caps_w = 290;
  r.power_w = 270;
  r.idle = false;
  r.steerable = true;
  r.demand = GainCurve::from_segments({{50, 0.02}, {100, 0.01}, {30, 0.001}});
  JobSummary j;
  j.job = "1234.0";
  j.domain = 1;
  j.mode = JobMode::latency;
  j.counters = CounterKind::software;
  j.gain_per_w = 0.003;
  j.unit = GradientUnit::latency_s_saved_per_w;
  j.speedup_per_w = 0.002;
  j.confidence = 0.6;
  j.memory_share = 0.3;
  j.busy_fraction = 0.7;
  j.source = GradientSource::combined;
  j.valid = true;
  r.jobs.push_back(j);
  j.job = "1235_7+1.2";
  j.valid = false;
  j.reason = "no progress signal";
  j.mode = JobMode::monitor;
  r.jobs.push_back(j);
  out.push_back(r);
  NodeReport idle;
  idle.node = "n2";
  idle.power_w = std::numeric_limits<double>::quiet_NaN();
  idle.lease_expires_at_s = std::numeric_limits<double>::infinity();
  out.push_back(idle);
  GrantMessage g;
  g.node = "n1";
  g.grant_w = 310;
  g.floor_w = 100;
  g.expires_at_s = 1250;
  g.lease_s = 10;
  g.epoch = 2;
  g.seq = 10;
  out.push_back(g);
  out.push_back(AdminStatusRequest{});
  out.push_back(AdminStatus{"{\"budget_w\": 1200,\n \"nodes\": []}"});
  out.push_back(AdminSetBudget{950.5});
  out.push_back(AdminResult{1, "permission denied"});
  out.push_back(ErrorMessage{300, "bad MAC"});
  NodeCaps caps;
  caps.node = "n1";
  caps.backend = CapsBackend::hsmp_hwmon;
  caps.energy = CapsEnergy::powercap;
  caps.counters = CapsCounters::hardware;
  caps.domains = 2;
  caps.min_w = 180;
  caps.max_w = 800;
  caps.clamps = 1;
  caps.restore_failures = 3;
  out.push_back(caps);
  NodeCaps monitor;
  monitor.node = "n2";
  monitor.reason = "energy-only powercap zones; no HSMP";
  out.push_back(monitor);
  return out;
}

}  // namespace pgfuzz
