// The authenticated channel: HMAC-SHA256 against known values, direction keys, and every
// way a sealed frame can be forged, replayed, reordered, reflected, cut or inflated.
#include <check.h>

#include <cstdio>

#include "protocol/channel.hpp"
#include "tests/unit/check_util.hpp"
#include "tests/unit/test_proto_util.hpp"

using namespace pgproto_test;

namespace {

Key counting_key(std::uint8_t start = 0) {
  Key k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(start + i);
  return k;
}

std::string hex(const std::uint8_t *p, std::size_t n) {
  std::string s;
  char b[3];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", p[i]);
    s += b;
  }
  return s;
}

struct Pair {
  SecureChannel client;
  SecureChannel server;
};

Pair make_pair(std::uint64_t session = 0x0102030405060708ull, const Key &key = counting_key()) {
  Pair p;
  ck_assert_status_ok(SecureChannel::create(session, key, Side::client, p.client));
  ck_assert_status_ok(SecureChannel::create(session, key, Side::server, p.server));
  return p;
}

std::string seal(SecureChannel &ch, const Message &m) {
  std::string out;
  const Status st = ch.seal(m, out);
  ck_assert_msg(st.ok(), "seal: %s", st.to_string().c_str());
  return out;
}

Status open(SecureChannel &ch, const std::string &frame, Frame *out = nullptr) {
  Frame f;
  const Status st = ch.open(bytes_of(frame), frame.size(), f);
  if (out != nullptr) *out = std::move(f);
  return st;
}

}  // namespace

START_TEST(test_hmac_known_values) {
  // Reference values from Python's hmac module (key 00..1f).
  MacKey k(counting_key());
  ck_assert(k.ok());
  Mac m;
  const std::string msg = "powergrad";
  ck_assert(k.compute(bytes_of(msg), msg.size(), nullptr, 0, m));
  ck_assert_std_str_eq(hex(m.data(), m.size()),
                       "8a4861c2830c8503d761f0b37e923f3469e508ca08e75d00268f5f9f74972d1e");
  // The prepared key is reused: the same MAC again, and split input gives the same MAC.
  ck_assert(k.compute(bytes_of(msg), 5, bytes_of(msg) + 5, 4, m));
  ck_assert_std_str_eq(hex(m.data(), m.size()),
                       "8a4861c2830c8503d761f0b37e923f3469e508ca08e75d00268f5f9f74972d1e");
  ck_assert(k.compute(nullptr, 0, nullptr, 0, m));
  ck_assert_std_str_eq(hex(m.data(), m.size()),
                       "d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb");
  ck_assert(k.verify(bytes_of(msg), msg.size(), nullptr, 0, [&] {
    Mac x;
    k.compute(bytes_of(msg), msg.size(), nullptr, 0, x);
    return x;
  }()));
}
END_TEST

START_TEST(test_direction_keys) {
  Key c2s, s2c, other;
  ck_assert(derive_direction_key(counting_key(), 0x0102030405060708ull, true, c2s));
  ck_assert(derive_direction_key(counting_key(), 0x0102030405060708ull, false, s2c));
  ck_assert_std_str_eq(hex(c2s.data(), c2s.size()),
                       "a32f52065cdcf6446294dcc35ea33c8d28f5cc4bfaf8ecfd117e85a29c2f8491");
  ck_assert(c2s != s2c);
  ck_assert(derive_direction_key(counting_key(), 0x0102030405060709ull, true, other));
  ck_assert(other != c2s);  // another session, another key
}
END_TEST

START_TEST(test_seal_open_both_ways) {
  Pair p = make_pair();
  for (int i = 1; i <= 3; ++i) {
    NodeReport r = sample_report();
    r.report_seq = static_cast<std::uint64_t>(i);
    Frame f;
    ck_assert_status_ok(open(p.server, seal(p.client, r), &f));
    ck_assert_uint_eq(f.header.seq, i);
    ck_assert_uint_eq(std::get<NodeReport>(f.message).report_seq, i);
    GrantMessage g = sample_grant();
    ck_assert_status_ok(open(p.client, seal(p.server, g), &f));
    ck_assert_uint_eq(f.header.seq, i);
  }
  ck_assert_uint_eq(p.client.last_sent_seq(), 3);
  ck_assert_uint_eq(p.server.last_received_seq(), 3);
}
END_TEST

START_TEST(test_forged_mac) {
  Pair p = make_pair();
  std::string f = seal(p.client, sample_report());
  f[f.size() - 1] ^= 1;
  ck_assert_errc(open(p.server, f), Errc::bad_mac);
  // A zero trailer (what an unauthenticated sender would put) is refused too.
  std::string z = seal(p.client, sample_report());
  for (std::size_t i = z.size() - kMacSize; i < z.size(); ++i) z[i] = 0;
  ck_assert_errc(open(p.server, z), Errc::bad_mac);
}
END_TEST

START_TEST(test_altered_payload_and_header) {
  Pair p = make_pair();
  const std::string good = seal(p.client, sample_report());
  std::string f = good;
  f[kHeaderSize + 10] ^= 0x40;  // a payload byte
  ck_assert_errc(open(p.server, f), Errc::bad_mac);
  f = good;
  f[16] ^= 0x02;  // the sequence number is covered by the MAC
  ck_assert_errc(open(p.server, f), Errc::bad_mac);
  // The untouched frame still opens: failures consumed no sequence number.
  ck_assert_status_ok(open(p.server, good));
}
END_TEST

START_TEST(test_wrong_key) {
  Pair p = make_pair();
  SecureChannel intruder;
  ck_assert_status_ok(
      SecureChannel::create(0x0102030405060708ull, counting_key(100), Side::client, intruder));
  ck_assert_errc(open(p.server, seal(intruder, sample_report())), Errc::bad_mac);
}
END_TEST

START_TEST(test_wrong_session) {
  Pair p = make_pair();
  SecureChannel other;
  ck_assert_status_ok(SecureChannel::create(99, counting_key(), Side::client, other));
  ck_assert_errc(open(p.server, seal(other, sample_report())), Errc::bad_session);
}
END_TEST

START_TEST(test_replayed_and_reordered) {
  Pair p = make_pair();
  const std::string f1 = seal(p.client, sample_report());
  const std::string f2 = seal(p.client, sample_report());
  const std::string f3 = seal(p.client, sample_report());
  ck_assert_status_ok(open(p.server, f1));
  ck_assert_errc(open(p.server, f1), Errc::replayed);
  ck_assert_status_ok(open(p.server, f3));
  const Status st = open(p.server, f2);  // arrives after 3: reordered
  ck_assert_errc(st, Errc::replayed);
  ck_assert_contains(st.message, "not above the last accepted 3");
}
END_TEST

START_TEST(test_reflected_frame) {
  // A frame the client sealed, sent back to the client, is not from the server.
  Pair p = make_pair();
  ck_assert_errc(open(p.client, seal(p.client, ErrorMessage{1, "x"})), Errc::bad_mac);
}
END_TEST

START_TEST(test_truncated_and_oversize) {
  Pair p = make_pair();
  const std::string f = seal(p.client, sample_report());
  ck_assert_errc(open(p.server, f.substr(0, f.size() - 1)), Errc::truncated);
  ck_assert_errc(open(p.server, f.substr(0, 20)), Errc::truncated);
  ck_assert_errc(open(p.server, f + "x"), Errc::trailing_bytes);
  std::string big = f;
  big[8] = static_cast<char>(0xff);
  big[9] = static_cast<char>(0xff);
  big[10] = static_cast<char>(0xff);
  ck_assert_errc(open(p.server, big), Errc::oversize);
}
END_TEST

START_TEST(test_not_established) {
  SecureChannel none;
  std::string out;
  ck_assert_errc(none.seal(sample_grant(), out), Errc::no_session);
  ck_assert_errc(open(none, "xxxx"), Errc::no_session);
  ck_assert_errc(SecureChannel::create(0, counting_key(), Side::client, none), Errc::bad_session);
}
END_TEST

START_TEST(test_seal_refuses_bad_message) {
  Pair p = make_pair();
  NodeReport r = sample_report();
  r.node = "bad name";
  std::string out;
  ck_assert_errc(p.client.seal(r, out), Errc::bad_string);
  ck_assert(out.empty());
  ck_assert_uint_eq(p.client.last_sent_seq(), 0);  // no sequence number used
  ck_assert_status_ok(open(p.server, seal(p.client, sample_report())));
}
END_TEST

Suite *channel_suite() {
  Suite *s = suite_create("proto_channel");
  TCase *c = tcase_create("crypto");
  tcase_add_test(c, test_hmac_known_values);
  tcase_add_test(c, test_direction_keys);
  suite_add_tcase(s, c);
  TCase *t = tcase_create("channel");
  tcase_add_test(t, test_seal_open_both_ways);
  tcase_add_test(t, test_forged_mac);
  tcase_add_test(t, test_altered_payload_and_header);
  tcase_add_test(t, test_wrong_key);
  tcase_add_test(t, test_wrong_session);
  tcase_add_test(t, test_replayed_and_reordered);
  tcase_add_test(t, test_reflected_frame);
  tcase_add_test(t, test_truncated_and_oversize);
  tcase_add_test(t, test_not_established);
  tcase_add_test(t, test_seal_refuses_bad_message);
  suite_add_tcase(s, t);
  return s;
}

int main() { return pgtest::run_suite(channel_suite()); }
