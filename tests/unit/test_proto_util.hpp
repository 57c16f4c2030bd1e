// Helpers shared by the protocol's Check runners: sample messages, field-by-field equality,
// raw frame construction for malformed-input tests.
#pragma once

#include <check.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "libgradient/control_messages.hpp"
#include "protocol/frame.hpp"
#include "protocol/messages.hpp"
#include "protocol/status.hpp"
#include "tests/unit/check_strings.hpp"

namespace pgproto_test {

using namespace powergrad;
using namespace powergrad::proto;

inline NodeReport sample_report(std::size_t jobs = 2, std::size_t segments = 3) {
  NodeReport r;
  r.node = "n1";
  r.incarnation = 1700000000123ull;
  r.report_seq = 42;
  r.sent_at_s = 1234.5;
  r.started_at_s = 1200.25;
  r.lease_epoch = 3;
  r.lease_seq = 17;
  r.lease_grant_w = 350.0;
  r.lease_expires_at_s = 1240.5;
  r.lease_expired = false;
  r.effective_grant_w = 340.0;
  r.min_w = 100.0;
  r.max_w = 500.0;
  r.need_w = 150.0;
  r.caps_w = 335.25;
  r.power_w = 320.125;
  r.idle = jobs == 0;
  r.steerable = jobs > 0;
  std::vector<GainSegment> segs;
  for (std::size_t i = 0; i < segments; ++i)
    segs.push_back({25.0, 0.01 / static_cast<double>(i + 1)});
  r.demand = GainCurve::from_segments(segs);
  for (std::size_t i = 0; i < jobs; ++i) {
    JobSummary j;
    j.job = std::to_string(1000 + i) + ".0";
    j.domain = i % 2;
    j.mode = i % 2 ? JobMode::throughput : JobMode::latency;
    j.counters = CounterKind::software;
    j.gain_per_w = 0.002 * static_cast<double>(i + 1);
    j.unit = i % 2 ? GradientUnit::relative_speedup_per_w : GradientUnit::latency_s_saved_per_w;
    j.speedup_per_w = 0.003;
    j.confidence = 0.7;
    j.memory_share = 0.4;
    j.busy_fraction = 0.8;
    j.source = GradientSource::combined;
    j.valid = i % 3 != 2;
    j.reason = j.valid ? "" : "no progress signal yet";
    if (i % 2) {  // odd jobs measured, even ones unknown (NaN through the codec's tags)
      j.energy_j = 5400.5 * static_cast<double>(i);
      j.avg_w = 90.25;
      j.cap_min_w = 80.0;
      j.cap_mean_w = 95.5;
      j.cap_max_w = 120.0;
    }
    j.elapsed_s = 60.0 * static_cast<double>(i);
    r.jobs.push_back(j);
  }
  return r;
}

inline GrantMessage sample_grant() {
  GrantMessage g;
  g.node = "n1";
  g.grant_w = 412.5;
  g.floor_w = 120.0;
  g.share_w = 205.5;
  g.expires_at_s = 1250.0;
  g.lease_s = 10.0;
  g.epoch = 7;
  g.seq = 99;
  return g;
}

// Doubles equal as values, NaN equal to NaN (what the codec promises for tagged fields).
inline bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// Empty when equal, else the first field that differs.
inline std::string diff(const NodeReport &a, const NodeReport &b) {
#define PG_CMP(f) \
  if (!(a.f == b.f)) return #f
#define PG_CMPD(f) \
  if (!same(a.f, b.f)) return #f
  PG_CMP(node);
  PG_CMP(incarnation);
  PG_CMP(report_seq);
  PG_CMPD(sent_at_s);
  PG_CMPD(started_at_s);
  PG_CMP(lease_epoch);
  PG_CMP(lease_seq);
  PG_CMPD(lease_grant_w);
  PG_CMPD(lease_expires_at_s);
  PG_CMP(lease_expired);
  PG_CMPD(effective_grant_w);
  PG_CMPD(min_w);
  PG_CMPD(max_w);
  PG_CMPD(need_w);
  PG_CMPD(caps_w);
  PG_CMPD(power_w);
  PG_CMP(idle);
  PG_CMP(steerable);
  if (a.demand.valid() != b.demand.valid()) return "demand.valid";
  if (a.demand.segments().size() != b.demand.segments().size()) return "demand.size";
  for (std::size_t i = 0; i < a.demand.segments().size(); ++i) {
    if (a.demand.segments()[i].width_w != b.demand.segments()[i].width_w) return "demand.width";
    if (a.demand.segments()[i].slope != b.demand.segments()[i].slope) return "demand.slope";
  }
  if (a.jobs.size() != b.jobs.size()) return "jobs.size";
  for (std::size_t i = 0; i < a.jobs.size(); ++i) {
    const JobSummary &x = a.jobs[i];
    const JobSummary &y = b.jobs[i];
    if (x.job != y.job) return "jobs.job";
    if (x.domain != y.domain) return "jobs.domain";
    if (x.mode != y.mode) return "jobs.mode";
    if (x.counters != y.counters) return "jobs.counters";
    if (!same(x.gain_per_w, y.gain_per_w)) return "jobs.gain_per_w";
    if (x.unit != y.unit) return "jobs.unit";
    if (!same(x.speedup_per_w, y.speedup_per_w)) return "jobs.speedup_per_w";
    if (!same(x.confidence, y.confidence)) return "jobs.confidence";
    if (!same(x.memory_share, y.memory_share)) return "jobs.memory_share";
    if (!same(x.busy_fraction, y.busy_fraction)) return "jobs.busy_fraction";
    if (x.source != y.source) return "jobs.source";
    if (x.valid != y.valid) return "jobs.valid";
    if (x.reason != y.reason) return "jobs.reason";
    if (!same(x.energy_j, y.energy_j)) return "jobs.energy_j";
    if (!same(x.avg_w, y.avg_w)) return "jobs.avg_w";
    if (!same(x.cap_min_w, y.cap_min_w)) return "jobs.cap_min_w";
    if (!same(x.cap_mean_w, y.cap_mean_w)) return "jobs.cap_mean_w";
    if (!same(x.cap_max_w, y.cap_max_w)) return "jobs.cap_max_w";
    if (!same(x.elapsed_s, y.elapsed_s)) return "jobs.elapsed_s";
  }
  return {};
#undef PG_CMP
#undef PG_CMPD
}

inline std::string diff(const GrantMessage &a, const GrantMessage &b) {
  if (a.node != b.node) return "node";
  if (a.grant_w != b.grant_w) return "grant_w";
  if (a.floor_w != b.floor_w) return "floor_w";
  if (a.share_w != b.share_w) return "share_w";
  if (a.expires_at_s != b.expires_at_s) return "expires_at_s";
  if (a.lease_s != b.lease_s) return "lease_s";
  if (a.epoch != b.epoch) return "epoch";
  if (a.seq != b.seq) return "seq";
  return {};
}

// Little-endian appenders for hand-made (possibly malformed) payloads.
struct Raw {
  std::string bytes;
  Raw &u8(std::uint8_t v) {
    bytes.push_back(static_cast<char>(v));
    return *this;
  }
  Raw &u16(std::uint16_t v) { return u8(v & 0xff).u8(v >> 8); }
  Raw &u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  Raw &u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  Raw &f64(double d) {
    std::uint64_t v;
    std::memcpy(&v, &d, 8);
    return u64(v);
  }
  Raw &str(const std::string &s) {
    u32(static_cast<std::uint32_t>(s.size()));
    bytes += s;
    return *this;
  }
  Raw &raw(const std::string &s) {
    bytes += s;
    return *this;
  }
};

struct HeaderFields {
  std::uint32_t magic = kMagic;
  std::uint8_t version = kProtocolVersion;
  std::uint8_t type = 0;
  std::uint16_t flags = 0;
  std::int64_t payload_len = -1;  // -1: the payload's real length
  std::uint32_t reserved = 0;
  std::uint64_t seq = 0;
  std::uint64_t session_id = 0;
};

// A frame with a zero trailer around `payload`, header fields as given.
inline std::string raw_frame(const HeaderFields &h, const std::string &payload) {
  Raw r;
  r.u32(h.magic).u8(h.version).u8(h.type).u16(h.flags);
  r.u32(h.payload_len < 0 ? static_cast<std::uint32_t>(payload.size())
                          : static_cast<std::uint32_t>(h.payload_len));
  r.u32(h.reserved).u64(h.seq).u64(h.session_id);
  r.bytes += payload;
  r.bytes.append(kMacSize, '\0');
  return r.bytes;
}

inline std::string raw_frame(MsgType type, const std::string &payload) {
  HeaderFields h;
  h.type = static_cast<std::uint8_t>(type);
  return raw_frame(h, payload);
}

inline const std::uint8_t *bytes_of(const std::string &s) {
  return reinterpret_cast<const std::uint8_t *>(s.data());
}

inline Status decode(const std::string &frame, Frame &out) {
  return decode_frame(bytes_of(frame), frame.size(), out);
}

inline Status decode(const std::string &frame) {
  Frame f;
  return decode_frame(bytes_of(frame), frame.size(), f);
}

// The payload encoding of a message (for patching).
inline std::string payload_of(const Message &m) {
  std::string out;
  const Status st = encode_payload(m, out);
  ck_assert_msg(st.ok(), "encode_payload: %s", st.to_string().c_str());
  return out;
}

}  // namespace pgproto_test

// Asserts that a Status has the given code, printing it when not.
#define ck_assert_errc(status_expr, expected)                                           \
  do {                                                                                  \
    const ::powergrad::proto::Status ck_st_ = (status_expr);                            \
    ck_assert_msg(ck_st_.code == (expected), "expected %s, got %s",                     \
                  ::powergrad::proto::errc_name(expected), ck_st_.to_string().c_str()); \
  } while (0)

#define ck_assert_status_ok(status_expr)                                           \
  do {                                                                             \
    const ::powergrad::proto::Status ck_st_ = (status_expr);                       \
    ck_assert_msg(ck_st_.ok(), "expected ok, got %s", ck_st_.to_string().c_str()); \
  } while (0)
