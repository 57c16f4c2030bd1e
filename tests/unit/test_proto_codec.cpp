// Messages and frames: round trips of every type, the header layout, the limits, and one
// test per class of malformed input, each rejected with its own code.
#include <check.h>

#include <cmath>
#include <limits>

#include "tests/unit/check_util.hpp"
#include "tests/unit/test_proto_util.hpp"

using namespace pgproto_test;

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// encode_frame -> decode_frame, checking type, seq and session survive.
Frame round_trip(const Message &m, std::uint64_t seq = 5, std::uint64_t session = 77) {
  std::string bytes;
  const Status st = encode_frame(m, seq, session, nullptr, bytes);
  ck_assert_msg(st.ok(), "encode: %s", st.to_string().c_str());
  Frame f;
  const Status dt = decode(bytes, f);
  ck_assert_msg(dt.ok(), "decode: %s", dt.to_string().c_str());
  ck_assert_int_eq(static_cast<int>(f.header.type), static_cast<int>(type_of(m)));
  ck_assert_uint_eq(f.header.seq, seq);
  ck_assert_uint_eq(f.header.session_id, session);
  ck_assert_uint_eq(f.header.payload_len, bytes.size() - kHeaderSize - kMacSize);
  // Canonical: re-encoding the decoded message gives the same bytes.
  std::string again;
  ck_assert(encode_frame(f.message, seq, session, nullptr, again).ok());
  ck_assert_msg(again == bytes, "re-encoding differs");
  return f;
}

// The offset of the first job in a sample_report(jobs, segments) payload.
// node "n1", incarnation, report_seq, sent_at_s, started_at_s (tagged), lease_epoch,
// lease_seq, lease_grant_w, lease_expires_at_s (tagged), lease_expired, effective_grant_w,
// min/max/need/caps, power_w (tagged), idle, steerable.
constexpr std::size_t kReportPrefix =
    (4 + 2) + 8 + 8 + 8 + 9 + 8 + 8 + 8 + 9 + 1 + 8 + 4 * 8 + 9 + 1 + 1;
std::size_t first_job_offset(std::size_t segments) { return kReportPrefix + 4 + 16 * segments + 4; }

std::string report_frame_with(const std::string &payload) {
  return raw_frame(MsgType::report, payload);
}

}  // namespace

// ------------------------------------------------------------------ round trips

START_TEST(test_round_trip_hello) {
  Hello h;
  h.role = PeerRole::admin;
  h.name = "login-1.cluster";
  h.incarnation = 99;
  for (std::size_t i = 0; i < h.nonce.size(); ++i) h.nonce[i] = static_cast<std::uint8_t>(i * 17);
  h.credential = "MUNGE:AwQFAAB+abc/def=:";
  const Frame f = round_trip(h, 0, 0);
  const auto &g = std::get<Hello>(f.message);
  ck_assert(g.role == PeerRole::admin);
  ck_assert_std_str_eq(g.name, h.name);
  ck_assert_uint_eq(g.incarnation, 99);
  ck_assert(g.nonce == h.nonce);
  ck_assert_std_str_eq(g.credential, h.credential);
}
END_TEST

START_TEST(test_round_trip_welcome) {
  Welcome w;
  w.credential = "MUNGE:xyz:";
  const Frame f = round_trip(w, 1, 12345);
  ck_assert_std_str_eq(std::get<Welcome>(f.message).credential, w.credential);
}
END_TEST

START_TEST(test_round_trip_report) {
  const NodeReport r = sample_report(3, 4);
  const Frame f = round_trip(r);
  const std::string d = diff(r, std::get<NodeReport>(f.message));
  ck_assert_msg(d.empty(), "field %s differs", d.c_str());
}
END_TEST

START_TEST(test_round_trip_report_special_values) {
  // power unknown (NaN) and a static grant that never expires (+inf): the only non-finite
  // values the format carries, through tags.
  NodeReport r = sample_report(0, 0);
  r.power_w = kNan;
  r.lease_expires_at_s = kInf;
  r.started_at_s = -kInf;
  r.lease_expired = true;
  r.sent_at_s = -0.0;
  const Frame f = round_trip(r);
  const auto &g = std::get<NodeReport>(f.message);
  ck_assert(std::isnan(g.power_w));
  ck_assert(std::isinf(g.lease_expires_at_s) && g.lease_expires_at_s > 0);
  ck_assert(std::isinf(g.started_at_s) && g.started_at_s < 0);
  ck_assert(g.lease_expired);
  ck_assert(g.demand.segments().empty() && g.jobs.empty());
  ck_assert(std::signbit(g.sent_at_s));
}
END_TEST

START_TEST(test_round_trip_grant) {
  const GrantMessage g = sample_grant();
  const Frame f = round_trip(g);
  const std::string d = diff(g, std::get<GrantMessage>(f.message));
  ck_assert_msg(d.empty(), "field %s differs", d.c_str());
}
END_TEST

START_TEST(test_round_trip_admin) {
  round_trip(AdminStatusRequest{});
  AdminStatus s;
  s.json = "{\n  \"budget_w\": 1200,\r\n\t\"nodes\": [\"n1\", \"n\\u00e9\"]\n}";
  ck_assert_std_str_eq(std::get<AdminStatus>(round_trip(s).message).json, s.json);
  AdminSetBudget b;
  b.budget_w = 1234.5;
  ck_assert(std::get<AdminSetBudget>(round_trip(b).message).budget_w == 1234.5);
  AdminResult res;
  res.code = static_cast<std::uint16_t>(AdminCode::invalid);
  res.message = "budget 10 W is below the nodes' floors (400 W)";
  const auto got = std::get<AdminResult>(round_trip(res).message);
  ck_assert_uint_eq(got.code, res.code);
  ck_assert_std_str_eq(got.message, res.message);
}
END_TEST

START_TEST(test_round_trip_error) {
  ErrorMessage e;
  e.code = static_cast<std::uint16_t>(Errc::bad_mac);
  e.message = "REPORT seq 3: MAC does not match";
  const auto got = std::get<ErrorMessage>(round_trip(e).message);
  ck_assert_uint_eq(got.code, e.code);
  ck_assert_std_str_eq(got.message, e.message);
  // An unknown code from a newer peer still decodes (kept raw).
  e.code = 4242;
  ck_assert_uint_eq(std::get<ErrorMessage>(round_trip(e).message).code, 4242);
  ck_assert_str_eq(errc_name(static_cast<std::uint16_t>(4242)), "unknown");
}
END_TEST

NodeCaps sample_caps() {
  NodeCaps c;
  c.node = "n1";
  c.backend = CapsBackend::hsmp_hwmon;
  c.energy = CapsEnergy::powercap;
  c.counters = CapsCounters::software;
  c.domains = 2;
  c.min_w = 180.0;
  c.max_w = 800.0;
  c.clamps = 3;
  c.restore_failures = 0x0102030405060708ull;
  return c;
}

START_TEST(test_round_trip_node_caps) {
  const NodeCaps c = sample_caps();
  const NodeCaps got = std::get<NodeCaps>(round_trip(c).message);
  ck_assert(got == c);
  ck_assert_str_eq(to_string(got.backend), "hsmp-hwmon");
  ck_assert_str_eq(to_string(got.energy), "powercap");
  ck_assert_str_eq(to_string(got.counters), "software");
  NodeCaps none;
  none.node = "n2";
  none.reason = "energy-only powercap zones (AMD RAPL has no limit registers); no HSMP";
  ck_assert(std::get<NodeCaps>(round_trip(none).message) == none);
  // At its limits it fits its computed bound exactly.
  NodeCaps big = sample_caps();
  big.node = std::string(kMaxNameLen, 'n');
  big.reason = std::string(kMaxMessageLen, 'r');
  std::string out;
  ck_assert_status_ok(encode_payload(big, out));
  ck_assert_uint_eq(out.size(), kMaxNodeCapsPayload);
}
END_TEST

START_TEST(test_node_caps_restore_failures_is_trailing_and_optional) {
  // restore_failures is the last field: its 8 bytes, little-endian, after the reason.
  NodeCaps c = sample_caps();
  c.reason = "x";
  std::string out;
  ck_assert_status_ok(encode_payload(c, out));
  ck_assert_uint_ge(out.size(), 8);
  const std::string tail = out.substr(out.size() - 8);
  ck_assert_int_eq(tail[0], 0x08);
  ck_assert_int_eq(tail[7], 0x01);
  ck_assert_int_eq(out[out.size() - 9], 'x');  // the reason's last byte
  // An older agent's NODE_CAPS ends after the reason: it decodes, with 0.
  const std::string old_form = out.substr(0, out.size() - 8);
  Message m;
  ck_assert_status_ok(decode_payload(MsgType::node_caps, bytes_of(old_form), old_form.size(), m));
  NodeCaps want = c;
  want.restore_failures = 0;
  ck_assert(std::get<NodeCaps>(m) == want);
  ck_assert(std::get<NodeCaps>(m) != c);
  // As a whole frame too.
  Frame f;
  ck_assert_status_ok(decode(raw_frame(MsgType::node_caps, old_form), f));
  ck_assert(std::get<NodeCaps>(f.message) == want);
  // Re-encoded, it takes the newer form: the old bytes and a zero count.
  std::string again;
  ck_assert_status_ok(encode_payload(std::get<NodeCaps>(m), again));
  ck_assert(again == old_form + std::string(8, '\0'));
  // The newer form carries the count.
  ck_assert_status_ok(decode_payload(MsgType::node_caps, bytes_of(out), out.size(), m));
  ck_assert_uint_eq(std::get<NodeCaps>(m).restore_failures, 0x0102030405060708ull);
  // Part of the field: truncated, not taken as absent.
  const std::string part = out.substr(0, out.size() - 5);
  ck_assert_errc(decode_payload(MsgType::node_caps, bytes_of(part), part.size(), m),
                 Errc::payload_truncated);
}
END_TEST

START_TEST(test_reject_bad_node_caps) {
  // An undefined backend, a range upside down, a reason over its limit: refused both ways.
  std::string out;
  ck_assert_status_ok(encode_payload(sample_caps(), out));
  std::string bad = out;
  bad[4 + 2] = 9;  // after node S("n1"): backend
  Message m;
  ck_assert_errc(decode_payload(MsgType::node_caps, bytes_of(bad), bad.size(), m), Errc::bad_enum);
  NodeCaps c = sample_caps();
  c.min_w = 900.0;
  out.clear();
  ck_assert_errc(encode_payload(c, out), Errc::bad_value);
  c = sample_caps();
  c.reason = std::string(kMaxMessageLen + 1, 'r');
  out.clear();
  ck_assert_errc(encode_payload(c, out), Errc::string_too_long);
  // Trailing bytes after the last field (restore_failures): refused, as every payload.
  out.clear();
  ck_assert_status_ok(encode_payload(sample_caps(), out));
  out.push_back('x');
  ck_assert_errc(decode_payload(MsgType::node_caps, bytes_of(out), out.size(), m),
                 Errc::trailing_bytes);
}
END_TEST

START_TEST(test_every_type_round_trips) {
  // One of each, so a new MsgType without a codec case fails here.
  const std::vector<Message> all = {Hello{PeerRole::node, "n1", 1, {}, "C"},
                                    Welcome{"C"},
                                    sample_report(),
                                    sample_grant(),
                                    AdminStatusRequest{},
                                    AdminStatus{"{}"},
                                    AdminSetBudget{1.0},
                                    AdminResult{0, "ok"},
                                    ErrorMessage{1, "x"},
                                    sample_caps()};
  ck_assert_uint_eq(all.size(), kMaxMsgType);
  for (const Message &m : all) {
    round_trip(m);
    ck_assert_str_ne(type_name(type_of(m)), "unknown");
  }
}
END_TEST

// ------------------------------------------------------------------ header layout

START_TEST(test_header_layout) {
  std::string bytes;
  ck_assert(
      encode_frame(sample_grant(), 0x0102030405060708ull, 0x1112131415161718ull, nullptr, bytes)
          .ok());
  const auto *p = bytes_of(bytes);
  ck_assert(p[0] == 'P' && p[1] == 'G' && p[2] == 'R' && p[3] == 'D');
  ck_assert_uint_eq(p[4], 1);
  ck_assert_uint_eq(p[5], static_cast<unsigned>(MsgType::grant));
  ck_assert(p[6] == 0 && p[7] == 0);
  const std::size_t len = bytes.size() - kHeaderSize - kMacSize;
  ck_assert_uint_eq(p[8] | (p[9] << 8) | (p[10] << 16) | (p[11] << 24), len);
  ck_assert(p[12] == 0 && p[13] == 0 && p[14] == 0 && p[15] == 0);
  ck_assert_uint_eq(p[16], 0x08);  // seq, little-endian
  ck_assert_uint_eq(p[23], 0x01);
  ck_assert_uint_eq(p[24], 0x18);  // session id
  ck_assert_uint_eq(p[31], 0x11);
  for (std::size_t i = bytes.size() - kMacSize; i < bytes.size(); ++i) ck_assert_uint_eq(p[i], 0);
}
END_TEST

START_TEST(test_limits_are_exact) {
  // A report filled to every limit fits its computed bound; one more job does not encode.
  NodeReport r = sample_report(0, 0);
  r.node = std::string(kMaxNameLen, 'n');
  std::vector<GainSegment> segs;
  for (std::size_t i = 0; i < kMaxCurveSegments; ++i)
    segs.push_back({1.0, 1.0 - static_cast<double>(i) / kMaxCurveSegments});
  r.demand = GainCurve::from_segments(segs);
  ck_assert_uint_eq(r.demand.segments().size(), kMaxCurveSegments);
  JobSummary j;
  j.job = std::string(kMaxJobKeyLen, 'j');
  j.reason = std::string(kMaxReasonLen, 'r');
  j.energy_j = j.avg_w = j.cap_min_w = j.cap_mean_w = j.cap_max_w = 1.0;  // finite: longest
  r.jobs.assign(kMaxJobsPerReport, j);
  std::string out;
  ck_assert_status_ok(encode_payload(r, out));
  ck_assert_uint_eq(out.size(), kMaxReportPayload);
  Frame f;
  ck_assert_status_ok(decode(raw_frame(MsgType::report, out), f));
  r.jobs.push_back(j);
  out.clear();
  ck_assert_errc(encode_payload(r, out), Errc::array_too_long);
  ck_assert(out.empty());

  Hello h{
      PeerRole::node, std::string(kMaxNameLen, 'h'), 1, {}, std::string(kMaxCredentialLen, 'c')};
  out.clear();
  ck_assert_status_ok(encode_payload(h, out));
  ck_assert_uint_eq(out.size(), kMaxHelloPayload);
  GrantMessage g = sample_grant();
  g.node = std::string(kMaxNameLen, 'g');
  out.clear();
  ck_assert_status_ok(encode_payload(g, out));
  ck_assert_uint_eq(out.size(), kMaxGrantPayload);
  ck_assert_uint_eq(max_payload(MsgType::admin_status_req), 0);
  ck_assert_uint_eq(max_payload(static_cast<MsgType>(0)), 0);
}
END_TEST

// ------------------------------------------------------------------ malformed: framing

START_TEST(test_reject_short_header) {
  std::string bytes;
  ck_assert(encode_frame(sample_grant(), 1, 1, nullptr, bytes).ok());
  for (std::size_t n : {0, 1, 4, 31}) ck_assert_errc(decode(bytes.substr(0, n)), Errc::truncated);
}
END_TEST

START_TEST(test_reject_bad_magic) {
  HeaderFields h;
  h.type = static_cast<std::uint8_t>(MsgType::admin_status_req);
  h.magic = 0x44524751;
  ck_assert_errc(decode(raw_frame(h, "")), Errc::bad_magic);
  h.magic = 0x20544547;  // "GET ": an HTTP client on our port
  ck_assert_errc(decode(raw_frame(h, "")), Errc::bad_magic);
}
END_TEST

START_TEST(test_reject_bad_version) {
  HeaderFields h;
  h.type = static_cast<std::uint8_t>(MsgType::admin_status_req);
  h.version = 2;
  ck_assert_errc(decode(raw_frame(h, "")), Errc::bad_version);
  h.version = 0;
  ck_assert_errc(decode(raw_frame(h, "")), Errc::bad_version);
}
END_TEST

START_TEST(test_reject_bad_type) {
  HeaderFields h;
  for (std::uint8_t t : {0, 11, 255}) {
    h.type = t;
    ck_assert_errc(decode(raw_frame(h, "")), Errc::bad_type);
  }
}
END_TEST

START_TEST(test_reject_bad_flags_and_reserved) {
  HeaderFields h;
  h.type = static_cast<std::uint8_t>(MsgType::admin_status_req);
  h.flags = 1;
  ck_assert_errc(decode(raw_frame(h, "")), Errc::bad_flags);
  h.flags = 0x8000;
  ck_assert_errc(decode(raw_frame(h, "")), Errc::bad_flags);
  h.flags = 0;
  h.reserved = 1;
  ck_assert_errc(decode(raw_frame(h, "")), Errc::bad_reserved);
}
END_TEST

START_TEST(test_reject_oversize_length) {
  HeaderFields h;
  h.type = static_cast<std::uint8_t>(MsgType::grant);
  h.payload_len = static_cast<std::int64_t>(kMaxGrantPayload) + 1;
  // Only the header is given: the length alone is refused, nothing else is read.
  const std::string header = raw_frame(h, "").substr(0, kHeaderSize);
  ck_assert_errc(decode(header), Errc::oversize);
  h.payload_len = 0xffffffffll;
  ck_assert_errc(decode(raw_frame(h, "").substr(0, kHeaderSize)), Errc::oversize);
  h.type = static_cast<std::uint8_t>(MsgType::admin_status_req);
  ck_assert_errc(decode(raw_frame(MsgType::admin_status_req, "x")), Errc::oversize);
  // Also at the payload layer.
  Message m;
  const std::string big(kMaxGrantPayload + 1, 'x');
  ck_assert_errc(decode_payload(MsgType::grant, bytes_of(big), big.size(), m), Errc::oversize);
}
END_TEST

START_TEST(test_reject_truncated_frame) {
  std::string bytes;
  ck_assert(encode_frame(sample_report(), 1, 1, nullptr, bytes).ok());
  ck_assert_errc(decode(bytes.substr(0, bytes.size() - 1)), Errc::truncated);
  ck_assert_errc(decode(bytes.substr(0, kHeaderSize + 3)), Errc::truncated);
  ck_assert_errc(decode(bytes.substr(0, kHeaderSize)), Errc::truncated);
}
END_TEST

START_TEST(test_reject_trailing_bytes) {
  std::string bytes;
  ck_assert(encode_frame(sample_grant(), 1, 1, nullptr, bytes).ok());
  ck_assert_errc(decode(bytes + "x"), Errc::trailing_bytes);
  // Inside the payload: the length covers a byte no field reads.
  ck_assert_errc(decode(raw_frame(MsgType::grant, payload_of(sample_grant()) + "z")),
                 Errc::trailing_bytes);
}
END_TEST

// ------------------------------------------------------------------ malformed: fields

START_TEST(test_reject_payload_truncated) {
  const std::string p = payload_of(sample_grant());
  Frame f;
  const Status st = decode(raw_frame(MsgType::grant, p.substr(0, p.size() - 3)), f);
  ck_assert_errc(st, Errc::payload_truncated);
  ck_assert_contains(st.message, "grant.seq");
  // A string length that runs past the end.
  ck_assert_errc(decode(raw_frame(MsgType::grant, Raw().u32(200).raw("n1").bytes)),
                 Errc::payload_truncated);
}
END_TEST

START_TEST(test_reject_string_too_long) {
  Raw r;
  r.str(std::string(kMaxNameLen + 1, 'n'));
  const Status st = decode(raw_frame(MsgType::grant, r.bytes));
  ck_assert_errc(st, Errc::string_too_long);
  ck_assert_contains(st.message, "grant.node");
  // Refused on the length alone, before the bytes are there.
  ck_assert_errc(decode(raw_frame(MsgType::error, Raw().u16(1).u32(0x7fffffff).bytes)),
                 Errc::string_too_long);
  // And by the encoder.
  GrantMessage g = sample_grant();
  g.node = std::string(kMaxNameLen + 1, 'n');
  std::string out;
  ck_assert_errc(encode_payload(g, out), Errc::string_too_long);
}
END_TEST

START_TEST(test_reject_bad_strings) {
  const std::string rest = payload_of(sample_grant()).substr(4 + 2);  // after node "n1"
  for (const std::string &bad : {std::string("n 1"), std::string("n/1"), std::string("n1\n"),
                                 std::string("n\0", 2), std::string("")}) {
    const Status st = decode(raw_frame(MsgType::grant, Raw().str(bad).raw(rest).bytes));
    ck_assert_errc(st, Errc::bad_string);
  }
  // Free text: no control characters except tab (log lines stay single lines).
  ck_assert_errc(decode(raw_frame(MsgType::error, Raw().u16(1).str("a\nb").bytes)),
                 Errc::bad_string);
  ck_assert_errc(decode(raw_frame(MsgType::error, Raw().u16(1).str(std::string("a\0b", 3)).bytes)),
                 Errc::bad_string);
  ck_assert_status_ok(decode(raw_frame(MsgType::error, Raw().u16(1).str("a\tb \xc3\xa9").bytes)));
  // Credentials: printable, no space.
  ck_assert_errc(decode(raw_frame(MsgType::welcome, Raw().str("MUNGE: x").bytes)),
                 Errc::bad_string);
  ck_assert_errc(check_text("", 10, TextKind::credential), Errc::bad_string);
  ck_assert_status_ok(check_text("", 10, TextKind::text));
}
END_TEST

START_TEST(test_reject_array_too_long) {
  NodeReport r = sample_report(0, 0);
  std::string p = payload_of(r);
  // jobs count is the last u32
  std::string q = p.substr(0, p.size() - 4) + Raw().u32(kMaxJobsPerReport + 1).bytes;
  ck_assert_errc(decode(report_frame_with(q)), Errc::array_too_long);
  // A count within the limit but larger than the bytes present: refused before reserving.
  q = p.substr(0, p.size() - 4) + Raw().u32(1000).bytes;
  const Status st = decode(report_frame_with(q));
  ck_assert_errc(st, Errc::payload_truncated);
  ck_assert_contains(st.message, "do not fit");
  // Same for the demand curve's segment count.
  q = p.substr(0, kReportPrefix) + Raw().u32(kMaxCurveSegments + 1).bytes +
      p.substr(kReportPrefix + 4);
  ck_assert_errc(decode(report_frame_with(q)), Errc::array_too_long);
}
END_TEST

START_TEST(test_reject_non_finite) {
  for (double bad : {kNan, kInf, -kInf}) {
    GrantMessage g = sample_grant();
    const std::string p = payload_of(g);
    // grant_w right after the node name
    const std::string q = p.substr(0, 6) + Raw().f64(bad).bytes + p.substr(14);
    ck_assert_errc(decode(raw_frame(MsgType::grant, q)), Errc::non_finite);
    g.grant_w = bad;
    std::string out;
    ck_assert_errc(encode_payload(g, out), Errc::non_finite);
  }
  // Tagged fields allow only their own special value.
  NodeReport r = sample_report(0, 0);
  r.lease_expires_at_s = kNan;
  std::string out;
  ck_assert_errc(encode_payload(r, out), Errc::non_finite);
  r = sample_report(0, 0);
  r.power_w = kInf;
  ck_assert_errc(encode_payload(r, out), Errc::non_finite);
  r = sample_report(0, 0);
  r.started_at_s = kInf;
  ck_assert_errc(encode_payload(r, out), Errc::non_finite);
  r.started_at_s = kNan;
  ck_assert_errc(encode_payload(r, out), Errc::non_finite);
  r = sample_report(0, 0);
  r.jobs.push_back(sample_report(1, 0).jobs[0]);
  r.jobs[0].confidence = kNan;
  const Status st = encode_payload(r, out);
  ck_assert_errc(st, Errc::non_finite);
  ck_assert_contains(st.message, "report.jobs[0].confidence");
  // A NaN bit pattern inside a tag-finite field is refused too.
  std::string p = payload_of(sample_report(0, 0));
  const std::size_t power_tag = kReportPrefix - 2 - 9;
  p[power_tag] = 0;  // finite, then NaN bits
  p = p.substr(0, power_tag + 1) + Raw().f64(kNan).bytes + p.substr(power_tag + 9);
  ck_assert_errc(decode(report_frame_with(p)), Errc::non_finite);
}
END_TEST

START_TEST(test_reject_bad_tags_and_enums) {
  std::string p = payload_of(sample_report(0, 0));
  const std::size_t expiry_tag = 6 + 8 * 3 + 9 + 8 * 3;
  std::string q = p;
  q[expiry_tag] = 1;  // NaN is not allowed for the lease expiry
  q.erase(expiry_tag + 1, 8);
  ck_assert_errc(decode(report_frame_with(q)), Errc::non_finite);
  q = p;
  q[expiry_tag] = 7;  // no such tag
  ck_assert_errc(decode(report_frame_with(q)), Errc::bad_enum);

  const std::string one_job = payload_of(sample_report(1, 1));
  const std::size_t job = first_job_offset(1);
  const std::size_t mode = job + (4 + 6) + 4;  // after job "1000.0" and domain
  q = one_job;
  q[mode] = 4;
  Status st = decode(report_frame_with(q));
  ck_assert_errc(st, Errc::bad_enum);
  ck_assert_contains(st.message, "report.jobs[0].mode");
  q = one_job;
  q[mode + 1] = 9;  // counters
  ck_assert_errc(decode(report_frame_with(q)), Errc::bad_enum);
  q = one_job;
  q[mode + 2 + 8] = 2;  // unit
  ck_assert_errc(decode(report_frame_with(q)), Errc::bad_enum);
  q = one_job;
  q[mode + 2 + 8 + 1 + 32] = 6;  // source
  ck_assert_errc(decode(report_frame_with(q)), Errc::bad_enum);

  Hello h{PeerRole::node, "n1", 1, {}, "C"};
  q = payload_of(h);
  q[0] = 3;
  ck_assert_errc(decode(raw_frame(MsgType::hello, q)), Errc::bad_enum);
  h.role = static_cast<PeerRole>(0);
  std::string out;
  ck_assert_errc(encode_payload(h, out), Errc::bad_enum);
}
END_TEST

START_TEST(test_reject_bad_bool) {
  std::string p = payload_of(sample_report(0, 0));
  const std::size_t idle = kReportPrefix - 2;
  p[idle] = 2;
  const Status st = decode(report_frame_with(p));
  ck_assert_errc(st, Errc::bad_bool);
  ck_assert_contains(st.message, "report.idle");
}
END_TEST

START_TEST(test_reject_bad_values) {
  // Negative budget.
  ck_assert_errc(decode(raw_frame(MsgType::admin_set_budget, Raw().f64(-1.0).bytes)),
                 Errc::bad_value);
  std::string out;
  ck_assert_errc(encode_payload(AdminSetBudget{-5.0}, out), Errc::bad_value);
  // Demand curves: not concave, negative, not canonical.
  const std::string p = payload_of(sample_report(0, 0));
  const std::string head = p.substr(0, kReportPrefix);
  const std::string jobs = Raw().u32(0).bytes;
  const auto with_curve = [&](const Raw &segs) {
    return report_frame_with(head + segs.bytes + jobs);
  };
  ck_assert_errc(decode(with_curve(Raw().u32(2).f64(10).f64(0.1).f64(10).f64(0.5))),
                 Errc::bad_value);
  ck_assert_errc(decode(with_curve(Raw().u32(1).f64(-10).f64(0.1))), Errc::bad_value);
  ck_assert_errc(decode(with_curve(Raw().u32(2).f64(10).f64(0.1).f64(10).f64(0.1))),
                 Errc::bad_value);
  ck_assert_errc(decode(with_curve(Raw().u32(2).f64(0).f64(0.2).f64(10).f64(0.1))),
                 Errc::bad_value);
  ck_assert_status_ok(decode(with_curve(Raw().u32(2).f64(10).f64(0.2).f64(10).f64(0.1))));
  // The encoder refuses an invalid curve.
  NodeReport r = sample_report(0, 0);
  r.demand = GainCurve::from_segments({{10, 0.1}, {10, 0.5}});
  ck_assert(!r.demand.valid());
  ck_assert_errc(encode_payload(r, out), Errc::bad_value);
}
END_TEST

START_TEST(test_encoder_refuses_bad_names) {
  NodeReport r = sample_report(1, 0);
  r.node = "";
  std::string out;
  ck_assert_errc(encode_payload(r, out), Errc::bad_string);
  r = sample_report(1, 0);
  r.jobs[0].reason = "line1\nline2";
  const Status st = encode_payload(r, out);
  ck_assert_errc(st, Errc::bad_string);
  ck_assert_contains(st.message, "report.jobs[0].reason");
  ck_assert(out.empty());
}
END_TEST

Suite *codec_suite() {
  Suite *s = suite_create("proto_codec");
  TCase *rt = tcase_create("round_trip");
  tcase_add_test(rt, test_round_trip_hello);
  tcase_add_test(rt, test_round_trip_welcome);
  tcase_add_test(rt, test_round_trip_report);
  tcase_add_test(rt, test_round_trip_report_special_values);
  tcase_add_test(rt, test_round_trip_grant);
  tcase_add_test(rt, test_round_trip_admin);
  tcase_add_test(rt, test_round_trip_error);
  tcase_add_test(rt, test_every_type_round_trips);
  tcase_add_test(rt, test_round_trip_node_caps);
  tcase_add_test(rt, test_node_caps_restore_failures_is_trailing_and_optional);
  tcase_add_test(rt, test_reject_bad_node_caps);
  tcase_add_test(rt, test_header_layout);
  tcase_add_test(rt, test_limits_are_exact);
  suite_add_tcase(s, rt);
  TCase *fr = tcase_create("malformed_frame");
  tcase_add_test(fr, test_reject_short_header);
  tcase_add_test(fr, test_reject_bad_magic);
  tcase_add_test(fr, test_reject_bad_version);
  tcase_add_test(fr, test_reject_bad_type);
  tcase_add_test(fr, test_reject_bad_flags_and_reserved);
  tcase_add_test(fr, test_reject_oversize_length);
  tcase_add_test(fr, test_reject_truncated_frame);
  tcase_add_test(fr, test_reject_trailing_bytes);
  suite_add_tcase(s, fr);
  TCase *fl = tcase_create("malformed_fields");
  tcase_add_test(fl, test_reject_payload_truncated);
  tcase_add_test(fl, test_reject_string_too_long);
  tcase_add_test(fl, test_reject_bad_strings);
  tcase_add_test(fl, test_reject_array_too_long);
  tcase_add_test(fl, test_reject_non_finite);
  tcase_add_test(fl, test_reject_bad_tags_and_enums);
  tcase_add_test(fl, test_reject_bad_bool);
  tcase_add_test(fl, test_reject_bad_values);
  tcase_add_test(fl, test_encoder_refuses_bad_names);
  suite_add_tcase(s, fl);
  return s;
}

int main() { return pgtest::run_suite(codec_suite()); }
