#include "protocol/messages.hpp"

#include <new>
#include <utility>
#include <vector>

namespace powergrad::proto {

namespace {

// Enum ranges on the wire (u8); a value above these is rejected as bad_enum. Kept next to
// the codec so a new enumerator in libgradient shows up here as a failing round-trip test.
constexpr std::uint8_t kMaxJobMode = static_cast<std::uint8_t>(JobMode::off);
constexpr std::uint8_t kMaxCounterKind = static_cast<std::uint8_t>(CounterKind::emulated);
constexpr std::uint8_t kMaxGradientUnit =
    static_cast<std::uint8_t>(GradientUnit::latency_s_saved_per_w);
constexpr std::uint8_t kMaxGradientSource =
    static_cast<std::uint8_t>(GradientSource::default_prior);

constexpr std::uint8_t kMaxCapsBackend = static_cast<std::uint8_t>(CapsBackend::hsmp_ioctl);
constexpr std::uint8_t kMaxCapsEnergy = static_cast<std::uint8_t>(CapsEnergy::hsmp_power);
constexpr std::uint8_t kMaxCapsCounters = static_cast<std::uint8_t>(CapsCounters::emulated);

template <class E>
std::uint8_t u8_of(E e) {
  return static_cast<std::uint8_t>(e);
}

// ------------------------------------------------------------------------------ encode

void encode(WireWriter &w, const Hello &m) {
  if (m.role != PeerRole::node && m.role != PeerRole::admin) {
    w.set_error(Errc::bad_enum, "hello.role",
                "value " + std::to_string(u8_of(m.role)) + " is not defined");
    return;
  }
  w.u8(u8_of(m.role));
  w.str(m.name, kMaxNameLen, TextKind::ident, "hello.name");
  w.u64(m.incarnation);
  w.bytes(m.nonce.data(), m.nonce.size());
  w.str(m.credential, kMaxCredentialLen, TextKind::credential, "hello.credential");
}

void encode(WireWriter &w, const Welcome &m) {
  w.str(m.credential, kMaxCredentialLen, TextKind::credential, "welcome.credential");
}

void encode(WireWriter &w, const JobSummary &j) {
  w.str(j.job, kMaxJobKeyLen, TextKind::ident, "job");
  if (j.domain > UINT32_MAX) {
    w.set_error(Errc::bad_value, "domain", std::to_string(j.domain) + " does not fit in 32 bits");
    return;
  }
  w.u32(static_cast<std::uint32_t>(j.domain));
  w.u8(u8_of(j.mode));
  w.u8(u8_of(j.counters));
  w.f64(j.gain_per_w, "gain_per_w");
  w.u8(u8_of(j.unit));
  w.f64(j.speedup_per_w, "speedup_per_w");
  w.f64(j.confidence, "confidence");
  w.f64(j.memory_share, "memory_share");
  w.f64(j.busy_fraction, "busy_fraction");
  w.u8(u8_of(j.source));
  w.boolean(j.valid);
  w.str(j.reason, kMaxReasonLen, TextKind::text, "reason");
  w.f64_ext(j.energy_j, kAllowNan, "energy_j");
  w.f64_ext(j.avg_w, kAllowNan, "avg_w");
  w.f64_ext(j.cap_min_w, kAllowNan, "cap_min_w");
  w.f64_ext(j.cap_mean_w, kAllowNan, "cap_mean_w");
  w.f64_ext(j.cap_max_w, kAllowNan, "cap_max_w");
  w.f64(j.elapsed_s, "elapsed_s");
}

// Enumerators beyond the known range can only come from a cast; refused like the decoder
// would, so a bad value is caught on the node that made it.
bool check_enums(WireWriter &w, const JobSummary &j) {
  if (u8_of(j.mode) > kMaxJobMode) w.set_error(Errc::bad_enum, "mode", "value out of range");
  if (u8_of(j.counters) > kMaxCounterKind)
    w.set_error(Errc::bad_enum, "counters", "value out of range");
  if (u8_of(j.unit) > kMaxGradientUnit) w.set_error(Errc::bad_enum, "unit", "value out of range");
  if (u8_of(j.source) > kMaxGradientSource)
    w.set_error(Errc::bad_enum, "source", "value out of range");
  return w.ok();
}

void encode(WireWriter &w, const NodeReport &r) {
  w.str(r.node, kMaxNameLen, TextKind::ident, "report.node");
  w.u64(r.incarnation);
  w.u64(r.report_seq);
  w.f64(r.sent_at_s, "report.sent_at_s");
  // -infinity: this incarnation accepts grants of any age.
  w.f64_ext(r.started_at_s, kAllowNegInf, "report.started_at_s");
  w.u64(r.lease_epoch);
  w.u64(r.lease_seq);
  w.f64(r.lease_grant_w, "report.lease_grant_w");
  // +infinity: the node runs on its static grant, which never expires.
  w.f64_ext(r.lease_expires_at_s, kAllowPosInf, "report.lease_expires_at_s");
  w.boolean(r.lease_expired);
  w.f64(r.effective_grant_w, "report.effective_grant_w");
  w.f64(r.min_w, "report.min_w");
  w.f64(r.max_w, "report.max_w");
  w.f64(r.need_w, "report.need_w");
  w.f64(r.caps_w, "report.caps_w");
  // NaN: no power reading this period.
  w.f64_ext(r.power_w, kAllowNan, "report.power_w");
  w.boolean(r.idle);
  w.boolean(r.steerable);
  if (!r.demand.valid()) {
    w.set_error(Errc::bad_value, "report.demand", r.demand.error());
    return;
  }
  const auto &segments = r.demand.segments();
  w.count(segments.size(), kMaxCurveSegments, "report.demand");
  for (std::size_t i = 0; i < segments.size() && w.ok(); ++i) {
    w.f64(segments[i].width_w, "width_w");
    w.f64(segments[i].slope, "slope");
    if (!w.ok()) w.add_context("report.demand[" + std::to_string(i) + "].");
  }
  w.count(r.jobs.size(), kMaxJobsPerReport, "report.jobs");
  for (std::size_t i = 0; i < r.jobs.size() && w.ok(); ++i) {
    if (check_enums(w, r.jobs[i])) encode(w, r.jobs[i]);
    if (!w.ok()) w.add_context("report.jobs[" + std::to_string(i) + "].");
  }
}

void encode(WireWriter &w, const GrantMessage &g) {
  w.str(g.node, kMaxNameLen, TextKind::ident, "grant.node");
  w.f64(g.grant_w, "grant.grant_w");
  w.f64(g.floor_w, "grant.floor_w");
  w.f64(g.share_w, "grant.share_w");
  w.f64(g.expires_at_s, "grant.expires_at_s");
  w.f64(g.lease_s, "grant.lease_s");
  w.u64(g.epoch);
  w.u64(g.seq);
}

void encode(WireWriter &, const AdminStatusRequest &) {}

void encode(WireWriter &w, const AdminStatus &m) {
  w.str(m.json, kMaxStatusJsonLen, TextKind::json, "admin_status.json");
}

void encode(WireWriter &w, const AdminSetBudget &m) {
  if (m.budget_w < 0.0) {
    w.set_error(Errc::bad_value, "admin_set_budget.budget_w", "negative");
    return;
  }
  w.f64(m.budget_w, "admin_set_budget.budget_w");
}

void encode(WireWriter &w, const AdminResult &m) {
  w.u16(m.code);
  w.str(m.message, kMaxMessageLen, TextKind::text, "admin_result.message");
}

void encode(WireWriter &w, const ErrorMessage &m) {
  w.u16(m.code);
  w.str(m.message, kMaxMessageLen, TextKind::text, "error.message");
}

void encode(WireWriter &w, const NodeCaps &m) {
  w.str(m.node, kMaxNameLen, TextKind::ident, "node_caps.node");
  if (u8_of(m.backend) > kMaxCapsBackend || u8_of(m.energy) > kMaxCapsEnergy ||
      u8_of(m.counters) > kMaxCapsCounters) {
    w.set_error(Errc::bad_enum, "node_caps", "value out of range");
    return;
  }
  if (!(m.min_w >= 0.0) || !(m.max_w >= m.min_w)) {
    w.set_error(Errc::bad_value, "node_caps.min_w", "range must satisfy 0 <= min_w <= max_w");
    return;
  }
  w.u8(u8_of(m.backend));
  w.u8(u8_of(m.energy));
  w.u8(u8_of(m.counters));
  w.u16(m.domains);
  w.f64(m.min_w, "node_caps.min_w");
  w.f64(m.max_w, "node_caps.max_w");
  w.u64(m.clamps);
  w.str(m.reason, kMaxMessageLen, TextKind::text, "node_caps.reason");
  w.u64(m.restore_failures);
}

// ------------------------------------------------------------------------------ decode

void decode(WireReader &r, NodeCaps &m) {
  m.node = r.str(kMaxNameLen, TextKind::ident, "node_caps.node");
  m.backend = r.enumeration<CapsBackend>(kMaxCapsBackend, "node_caps.backend");
  m.energy = r.enumeration<CapsEnergy>(kMaxCapsEnergy, "node_caps.energy");
  m.counters = r.enumeration<CapsCounters>(kMaxCapsCounters, "node_caps.counters");
  m.domains = r.u16("node_caps.domains");
  m.min_w = r.f64("node_caps.min_w");
  m.max_w = r.f64("node_caps.max_w");
  if (r.ok() && (m.min_w < 0.0 || m.max_w < m.min_w))
    r.set_error(Errc::bad_value, "node_caps.min_w", "range must satisfy 0 <= min_w <= max_w");
  m.clamps = r.u64("node_caps.clamps");
  m.reason = r.str(kMaxMessageLen, TextKind::text, "node_caps.reason");
  // Optional trailing field: an older agent's NODE_CAPS ends after the reason (0 then).
  // Some bytes but fewer than 8 are payload_truncated; more are trailing_bytes.
  m.restore_failures = r.ok() && r.remaining() > 0 ? r.u64("node_caps.restore_failures") : 0;
}

void decode(WireReader &r, Hello &m) {
  const std::uint8_t role = r.u8("hello.role");
  if (r.ok() && role != u8_of(PeerRole::node) && role != u8_of(PeerRole::admin))
    r.set_error(Errc::bad_enum, "hello.role", "value " + std::to_string(role) + " is not defined");
  m.role = static_cast<PeerRole>(role);
  m.name = r.str(kMaxNameLen, TextKind::ident, "hello.name");
  m.incarnation = r.u64("hello.incarnation");
  r.bytes(m.nonce.data(), m.nonce.size(), "hello.nonce");
  m.credential = r.str(kMaxCredentialLen, TextKind::credential, "hello.credential");
}

void decode(WireReader &r, Welcome &m) {
  m.credential = r.str(kMaxCredentialLen, TextKind::credential, "welcome.credential");
}

void decode(WireReader &r, JobSummary &j) {
  j.job = r.str(kMaxJobKeyLen, TextKind::ident, "job");
  j.domain = r.u32("domain");
  j.mode = r.enumeration<JobMode>(kMaxJobMode, "mode");
  j.counters = r.enumeration<CounterKind>(kMaxCounterKind, "counters");
  j.gain_per_w = r.f64("gain_per_w");
  j.unit = r.enumeration<GradientUnit>(kMaxGradientUnit, "unit");
  j.speedup_per_w = r.f64("speedup_per_w");
  j.confidence = r.f64("confidence");
  j.memory_share = r.f64("memory_share");
  j.busy_fraction = r.f64("busy_fraction");
  j.source = r.enumeration<GradientSource>(kMaxGradientSource, "source");
  j.valid = r.boolean("valid");
  j.reason = r.str(kMaxReasonLen, TextKind::text, "reason");
  j.energy_j = r.f64_ext(kAllowNan, "energy_j");
  j.avg_w = r.f64_ext(kAllowNan, "avg_w");
  j.cap_min_w = r.f64_ext(kAllowNan, "cap_min_w");
  j.cap_mean_w = r.f64_ext(kAllowNan, "cap_mean_w");
  j.cap_max_w = r.f64_ext(kAllowNan, "cap_max_w");
  j.elapsed_s = r.f64("elapsed_s");
}

void decode(WireReader &r, NodeReport &m) {
  m.node = r.str(kMaxNameLen, TextKind::ident, "report.node");
  m.incarnation = r.u64("report.incarnation");
  m.report_seq = r.u64("report.report_seq");
  m.sent_at_s = r.f64("report.sent_at_s");
  m.started_at_s = r.f64_ext(kAllowNegInf, "report.started_at_s");
  m.lease_epoch = r.u64("report.lease_epoch");
  m.lease_seq = r.u64("report.lease_seq");
  m.lease_grant_w = r.f64("report.lease_grant_w");
  m.lease_expires_at_s = r.f64_ext(kAllowPosInf, "report.lease_expires_at_s");
  m.lease_expired = r.boolean("report.lease_expired");
  m.effective_grant_w = r.f64("report.effective_grant_w");
  m.min_w = r.f64("report.min_w");
  m.max_w = r.f64("report.max_w");
  m.need_w = r.f64("report.need_w");
  m.caps_w = r.f64("report.caps_w");
  m.power_w = r.f64_ext(kAllowNan, "report.power_w");
  m.idle = r.boolean("report.idle");
  m.steerable = r.boolean("report.steerable");

  const std::size_t n_segments = r.count(kMaxCurveSegments, kSegmentWire, "report.demand");
  std::vector<GainSegment> segments;
  segments.reserve(n_segments);
  for (std::size_t i = 0; i < n_segments && r.ok(); ++i) {
    GainSegment s;
    s.width_w = r.f64("width_w");
    s.slope = r.f64("slope");
    if (!r.ok()) r.add_context("report.demand[" + std::to_string(i) + "].");
    segments.push_back(s);
  }
  if (r.ok()) {
    m.demand = GainCurve::from_segments(segments);
    if (!m.demand.valid()) {
      r.set_error(Errc::bad_value, "report.demand", m.demand.error());
    } else {
      // Only the canonical form is accepted (no zero widths, no equal neighbours), which
      // from_segments would silently rewrite: decoding then re-encoding gives the same bytes,
      // and the curve the controller uses is exactly the one the node sent.
      const auto &got = m.demand.segments();
      bool same = got.size() == segments.size();
      for (std::size_t i = 0; same && i < got.size(); ++i)
        same = got[i].width_w == segments[i].width_w && got[i].slope == segments[i].slope;
      if (!same)
        r.set_error(Errc::bad_value, "report.demand",
                    "not in canonical form (zero-width segments or equal neighbouring slopes)");
    }
  }

  const std::size_t n_jobs = r.count(kMaxJobsPerReport, kMinJobSummaryWire, "report.jobs");
  m.jobs.clear();
  m.jobs.reserve(n_jobs);
  for (std::size_t i = 0; i < n_jobs && r.ok(); ++i) {
    JobSummary j;
    decode(r, j);
    if (!r.ok()) r.add_context("report.jobs[" + std::to_string(i) + "].");
    m.jobs.push_back(std::move(j));
  }
}

void decode(WireReader &r, GrantMessage &g) {
  g.node = r.str(kMaxNameLen, TextKind::ident, "grant.node");
  g.grant_w = r.f64("grant.grant_w");
  g.floor_w = r.f64("grant.floor_w");
  g.share_w = r.f64("grant.share_w");
  g.expires_at_s = r.f64("grant.expires_at_s");
  g.lease_s = r.f64("grant.lease_s");
  g.epoch = r.u64("grant.epoch");
  g.seq = r.u64("grant.seq");
}

void decode(WireReader &, AdminStatusRequest &) {}

void decode(WireReader &r, AdminStatus &m) {
  m.json = r.str(kMaxStatusJsonLen, TextKind::json, "admin_status.json");
}

void decode(WireReader &r, AdminSetBudget &m) {
  m.budget_w = r.f64("admin_set_budget.budget_w");
  if (r.ok() && m.budget_w < 0.0)
    r.set_error(Errc::bad_value, "admin_set_budget.budget_w", "negative");
}

void decode(WireReader &r, AdminResult &m) {
  m.code = r.u16("admin_result.code");
  m.message = r.str(kMaxMessageLen, TextKind::text, "admin_result.message");
}

void decode(WireReader &r, ErrorMessage &m) {
  m.code = r.u16("error.code");
  m.message = r.str(kMaxMessageLen, TextKind::text, "error.message");
}

template <class T>
Status decode_as(const std::uint8_t *data, std::size_t size, Message &out) {
  WireReader r(data, size);
  T value;
  decode(r, value);
  r.expect_end("payload");
  if (!r.ok()) return r.status();
  out = std::move(value);
  return {};
}

}  // namespace

const char *type_name(MsgType type) {
  switch (type) {
    case MsgType::hello:
      return "HELLO";
    case MsgType::welcome:
      return "WELCOME";
    case MsgType::report:
      return "REPORT";
    case MsgType::grant:
      return "GRANT";
    case MsgType::admin_status_req:
      return "ADMIN_STATUS_REQ";
    case MsgType::admin_status:
      return "ADMIN_STATUS";
    case MsgType::admin_set_budget:
      return "ADMIN_SET_BUDGET";
    case MsgType::admin_result:
      return "ADMIN_RESULT";
    case MsgType::error:
      return "ERROR";
    case MsgType::node_caps:
      return "NODE_CAPS";
  }
  return "unknown";
}

const char *to_string(CapsBackend v) {
  switch (v) {
    case CapsBackend::none:
      return "none";
    case CapsBackend::rapl:
      return "rapl";
    case CapsBackend::hsmp_hwmon:
      return "hsmp-hwmon";
    case CapsBackend::hsmp_ioctl:
      return "hsmp-ioctl";
  }
  return "?";
}

const char *to_string(CapsEnergy v) {
  switch (v) {
    case CapsEnergy::none:
      return "none";
    case CapsEnergy::powercap:
      return "powercap";
    case CapsEnergy::hsmp_power:
      return "hsmp-power";
  }
  return "?";
}

const char *to_string(CapsCounters v) {
  switch (v) {
    case CapsCounters::none:
      return "none";
    case CapsCounters::hardware:
      return "hardware";
    case CapsCounters::software:
      return "software";
    case CapsCounters::emulated:
      return "emulated";
  }
  return "?";
}

const char *role_name(PeerRole role) {
  switch (role) {
    case PeerRole::node:
      return "node";
    case PeerRole::admin:
      return "admin";
  }
  return "unknown";
}

std::size_t max_payload(MsgType type) {
  switch (type) {
    case MsgType::hello:
      return kMaxHelloPayload;
    case MsgType::welcome:
      return kMaxWelcomePayload;
    case MsgType::report:
      return kMaxReportPayload;
    case MsgType::grant:
      return kMaxGrantPayload;
    case MsgType::admin_status_req:
      return 0;
    case MsgType::admin_status:
      return kMaxAdminStatusPayload;
    case MsgType::admin_set_budget:
      return kMaxAdminSetBudgetPayload;
    case MsgType::admin_result:
      return kMaxAdminResultPayload;
    case MsgType::error:
      return kMaxErrorPayload;
    case MsgType::node_caps:
      return kMaxNodeCapsPayload;
  }
  return 0;
}

MsgType type_of(const Message &message) { return static_cast<MsgType>(message.index() + 1); }

Status encode_payload(const Message &message, std::string &out) {
  try {
    const std::size_t start = out.size();
    WireWriter w(out);
    std::visit([&w](const auto &m) { encode(w, m); }, message);
    if (!w.ok()) {
      out.resize(start);
      return w.status();
    }
    // Field limits bound every payload by construction; this guards the arithmetic above.
    if (out.size() - start > max_payload(type_of(message))) {
      out.resize(start);
      return Status::error(Errc::internal, std::string(type_name(type_of(message))) +
                                               " payload exceeds its computed limit");
    }
    return {};
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory encoding a payload");
  } catch (const std::exception &e) {
    return Status::error(Errc::internal, std::string("encoding a payload: ") + e.what());
  }
}

Status decode_payload(MsgType type, const std::uint8_t *data, std::size_t size, Message &out) {
  if (size > max_payload(type))
    return Status::error(Errc::oversize, std::string(type_name(type)) + " payload of " +
                                             std::to_string(size) + " bytes, limit " +
                                             std::to_string(max_payload(type)));
  try {
    switch (type) {
      case MsgType::hello:
        return decode_as<Hello>(data, size, out);
      case MsgType::welcome:
        return decode_as<Welcome>(data, size, out);
      case MsgType::report:
        return decode_as<NodeReport>(data, size, out);
      case MsgType::grant:
        return decode_as<GrantMessage>(data, size, out);
      case MsgType::admin_status_req:
        return decode_as<AdminStatusRequest>(data, size, out);
      case MsgType::admin_status:
        return decode_as<AdminStatus>(data, size, out);
      case MsgType::admin_set_budget:
        return decode_as<AdminSetBudget>(data, size, out);
      case MsgType::admin_result:
        return decode_as<AdminResult>(data, size, out);
      case MsgType::error:
        return decode_as<ErrorMessage>(data, size, out);
      case MsgType::node_caps:
        return decode_as<NodeCaps>(data, size, out);
    }
    return Status::error(Errc::bad_type,
                         "message type " + std::to_string(static_cast<unsigned>(type)));
  } catch (const std::bad_alloc &) {
    return Status::error(Errc::internal, "out of memory decoding a payload");
  } catch (const std::exception &e) {
    return Status::error(Errc::internal, std::string("decoding a payload: ") + e.what());
  }
}

}  // namespace powergrad::proto
