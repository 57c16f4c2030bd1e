// Bounded little-endian primitives: the only code that touches the bytes of a payload.
//
// Both sides check the same rules, so an encoder refuses what a decoder would reject (a
// local bug is reported where it happens, not as a remote peer's error):
//   integers   u8/u16/u32/u64, little-endian
//   booleans   one byte, 0 or 1
//   doubles    IEEE 754 binary64 bit patterns, finite only. A field that must be able to say
//              "unknown" or "no end" carries a tag byte first (see F64Tag) and the value
//              only when the tag says finite: NaN and infinities never travel as bits.
//   strings    u32 byte length, then the bytes (no terminator); each field has a maximum
//              length and a character class (TextKind), checked before anything is copied
//   arrays     u32 count, checked against the field's maximum and against the bytes left
//              (count x smallest element), before anything is reserved
// The reader is sticky: after the first error every read returns a zero value and the
// first error is kept, so decoders read straight through and check once at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/status.hpp"

namespace powergrad::proto {

// What characters a string field may hold. Names and credentials are restricted because they
// end up in logs, file names and C APIs; free text may not carry control characters (no log
// line injection) nor NUL (C APIs would cut it).
enum class TextKind {
  ident,       // non-empty; A-Z a-z 0-9 and . _ - + : @ (node names, job keys)
  text,        // may be empty; no NUL or control characters except tab
  json,        // as text, plus CR and LF
  credential,  // non-empty; printable ASCII without space (munge's base64 form)
};

// Tags of an extended double. A field lists which tags it allows.
enum class F64Tag : std::uint8_t { finite = 0, nan = 1, pos_inf = 2, neg_inf = 3 };
constexpr unsigned kAllowNan = 1u << static_cast<unsigned>(F64Tag::nan);
constexpr unsigned kAllowPosInf = 1u << static_cast<unsigned>(F64Tag::pos_inf);
constexpr unsigned kAllowNegInf = 1u << static_cast<unsigned>(F64Tag::neg_inf);

// Wire sizes, for the limits computed in messages.hpp.
constexpr std::size_t kU8 = 1, kU16 = 2, kU32 = 4, kU64 = 8, kF64 = 8, kF64Ext = 9;
constexpr std::size_t string_wire_max(std::size_t max_len) { return kU32 + max_len; }

// ok when `s` is allowed in a field of kind `kind` and at most max_len bytes long;
// otherwise string_too_long or bad_string saying why. Used by both sides and by callers that
// validate early (configuration).
Status check_text(std::string_view s, std::size_t max_len, TextKind kind);

class WireWriter {
 public:
  // Appends to `out` (which may already hold a header).
  explicit WireWriter(std::string &out) : out_(out) {}

  void u8(std::uint8_t v);
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void u64(std::uint64_t v);
  void boolean(bool v) { u8(v ? 1 : 0); }
  void f64(double v, const char *field);
  void f64_ext(double v, unsigned allowed, const char *field);
  void str(std::string_view s, std::size_t max_len, TextKind kind, const char *field);
  void bytes(const void *data, std::size_t n);
  // An array's element count; refuses more than max.
  void count(std::size_t n, std::size_t max, const char *field);

  bool ok() const { return status_.ok(); }
  const Status &status() const { return status_; }
  void set_error(Errc code, const char *field, const std::string &detail);
  // Prefixes the error's message with `context` (e.g. "jobs[3].") if an error is set.
  void add_context(const std::string &context);

 private:
  std::string &out_;
  Status status_;
};

class WireReader {
 public:
  WireReader(const std::uint8_t *data, std::size_t size) : p_(data), end_(data + size) {}

  std::uint8_t u8(const char *field);
  std::uint16_t u16(const char *field);
  std::uint32_t u32(const char *field);
  std::uint64_t u64(const char *field);
  bool boolean(const char *field);
  double f64(const char *field);
  double f64_ext(unsigned allowed, const char *field);
  std::string str(std::size_t max_len, TextKind kind, const char *field);
  void bytes(void *out, std::size_t n, const char *field);
  // An array's element count: at most max, and at most what the remaining bytes can hold at
  // min_element_bytes each, so a lying count never makes the caller reserve memory.
  std::size_t count(std::size_t max, std::size_t min_element_bytes, const char *field);
  // An enum stored as u8 whose valid values are 0..max_value.
  template <class E>
  E enumeration(std::uint8_t max_value, const char *field) {
    const std::uint8_t v = u8(field);
    if (ok() && v > max_value) bad_enum(v, max_value, field);
    return ok() ? static_cast<E>(v) : E{};
  }

  // Fails with trailing_bytes unless every byte was read.
  void expect_end(const char *what);

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  bool ok() const { return status_.ok(); }
  const Status &status() const { return status_; }
  void set_error(Errc code, const char *field, const std::string &detail);
  void add_context(const std::string &context);

 private:
  bool take(std::size_t n, const char *field);
  void bad_enum(unsigned v, unsigned max_value, const char *field);

  const std::uint8_t *p_;
  const std::uint8_t *end_;
  Status status_;
};

}  // namespace powergrad::proto
