#include "protocol/wire.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace powergrad::proto {

namespace {

bool ident_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '+' || c == ':' || c == '@';
}

bool allowed(unsigned char c, TextKind kind) {
  switch (kind) {
    case TextKind::ident:
      return ident_char(c);
    case TextKind::text:
      return c == '\t' || (c >= 0x20 && c != 0x7f);
    case TextKind::json:
      return c == '\t' || c == '\n' || c == '\r' || (c >= 0x20 && c != 0x7f);
    case TextKind::credential:
      return c > 0x20 && c < 0x7f;
  }
  return false;
}

const char *kind_name(TextKind kind) {
  switch (kind) {
    case TextKind::ident:
      return "a name";
    case TextKind::text:
      return "text";
    case TextKind::json:
      return "JSON text";
    case TextKind::credential:
      return "a credential";
  }
  return "a string";
}

F64Tag tag_of(double v) {
  if (std::isnan(v)) return F64Tag::nan;
  if (std::isinf(v)) return v > 0 ? F64Tag::pos_inf : F64Tag::neg_inf;
  return F64Tag::finite;
}

const char *tag_name(F64Tag t) {
  switch (t) {
    case F64Tag::finite:
      return "finite";
    case F64Tag::nan:
      return "NaN";
    case F64Tag::pos_inf:
      return "+infinity";
    case F64Tag::neg_inf:
      return "-infinity";
  }
  return "?";
}

std::uint64_t double_bits(double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

double bits_double(std::uint64_t bits) {
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

}  // namespace

Status check_text(std::string_view s, std::size_t max_len, TextKind kind) {
  if (s.size() > max_len)
    return Status::error(Errc::string_too_long,
                         std::to_string(s.size()) + " bytes, limit " + std::to_string(max_len));
  if (s.empty() && (kind == TextKind::ident || kind == TextKind::credential))
    return Status::error(Errc::bad_string, std::string("empty, but must be ") + kind_name(kind));
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (!allowed(c, kind)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      return Status::error(Errc::bad_string, std::string("byte ") + hex + " at offset " +
                                                 std::to_string(i) + " is not allowed in " +
                                                 kind_name(kind));
    }
  }
  return {};
}

// ------------------------------------------------------------------------------ writer

void WireWriter::set_error(Errc code, const char *field, const std::string &detail) {
  if (!status_.ok()) return;
  status_ = Status::error(code, std::string(field) + ": " + detail);
}

void WireWriter::add_context(const std::string &context) {
  if (!status_.ok()) status_.message = context + status_.message;
}

void WireWriter::u8(std::uint8_t v) {
  if (ok()) out_.push_back(static_cast<char>(v));
}

void WireWriter::u16(std::uint16_t v) {
  if (!ok()) return;
  const char b[2] = {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
  out_.append(b, 2);
}

void WireWriter::u32(std::uint32_t v) {
  if (!ok()) return;
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out_.append(b, 4);
}

void WireWriter::u64(std::uint64_t v) {
  if (!ok()) return;
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out_.append(b, 8);
}

void WireWriter::f64(double v, const char *field) {
  if (!std::isfinite(v)) {
    set_error(Errc::non_finite, field,
              std::string(tag_name(tag_of(v))) + " is not a finite number");
    return;
  }
  u64(double_bits(v));
}

void WireWriter::f64_ext(double v, unsigned allowed_tags, const char *field) {
  const F64Tag tag = tag_of(v);
  if (tag != F64Tag::finite && !(allowed_tags & (1u << static_cast<unsigned>(tag)))) {
    set_error(Errc::non_finite, field, std::string(tag_name(tag)) + " is not allowed here");
    return;
  }
  u8(static_cast<std::uint8_t>(tag));
  if (tag == F64Tag::finite) u64(double_bits(v));
}

void WireWriter::str(std::string_view s, std::size_t max_len, TextKind kind, const char *field) {
  if (!ok()) return;
  Status st = check_text(s, max_len, kind);
  if (!st.ok()) {
    set_error(st.code, field, st.message);
    return;
  }
  u32(static_cast<std::uint32_t>(s.size()));
  out_.append(s.data(), s.size());
}

void WireWriter::bytes(const void *data, std::size_t n) {
  if (ok()) out_.append(static_cast<const char *>(data), n);
}

void WireWriter::count(std::size_t n, std::size_t max, const char *field) {
  if (n > max) {
    set_error(Errc::array_too_long, field,
              std::to_string(n) + " elements, limit " + std::to_string(max));
    return;
  }
  u32(static_cast<std::uint32_t>(n));
}

// ------------------------------------------------------------------------------ reader

void WireReader::set_error(Errc code, const char *field, const std::string &detail) {
  if (!status_.ok()) return;
  status_ = Status::error(code, std::string(field) + ": " + detail);
  p_ = end_;  // nothing more is read after an error
}

void WireReader::add_context(const std::string &context) {
  if (!status_.ok()) status_.message = context + status_.message;
}

bool WireReader::take(std::size_t n, const char *field) {
  if (!ok()) return false;
  if (remaining() < n) {
    set_error(Errc::payload_truncated, field,
              "needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left");
    return false;
  }
  return true;
}

std::uint8_t WireReader::u8(const char *field) {
  if (!take(1, field)) return 0;
  return *p_++;
}

std::uint16_t WireReader::u16(const char *field) {
  if (!take(2, field)) return 0;
  const std::uint16_t v = static_cast<std::uint16_t>(p_[0] | (p_[1] << 8));
  p_ += 2;
  return v;
}

std::uint32_t WireReader::u32(const char *field) {
  if (!take(4, field)) return 0;
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p_[i];
  p_ += 4;
  return v;
}

std::uint64_t WireReader::u64(const char *field) {
  if (!take(8, field)) return 0;
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p_[i];
  p_ += 8;
  return v;
}

bool WireReader::boolean(const char *field) {
  const std::uint8_t v = u8(field);
  if (ok() && v > 1)
    set_error(Errc::bad_bool, field, "byte " + std::to_string(v) + " is not 0 or 1");
  return ok() && v == 1;
}

double WireReader::f64(const char *field) {
  const double v = bits_double(u64(field));
  if (!ok()) return 0.0;
  if (!std::isfinite(v)) {
    set_error(Errc::non_finite, field,
              std::string(tag_name(tag_of(v))) + " is not a finite number");
    return 0.0;
  }
  return v;
}

double WireReader::f64_ext(unsigned allowed_tags, const char *field) {
  const std::uint8_t t = u8(field);
  if (!ok()) return 0.0;
  if (t > static_cast<std::uint8_t>(F64Tag::neg_inf)) {
    set_error(Errc::bad_enum, field, "number tag " + std::to_string(t) + " is not defined");
    return 0.0;
  }
  const auto tag = static_cast<F64Tag>(t);
  if (tag != F64Tag::finite && !(allowed_tags & (1u << t))) {
    set_error(Errc::non_finite, field, std::string(tag_name(tag)) + " is not allowed here");
    return 0.0;
  }
  switch (tag) {
    case F64Tag::finite:
      return f64(field);
    case F64Tag::nan:
      return std::numeric_limits<double>::quiet_NaN();
    case F64Tag::pos_inf:
      return std::numeric_limits<double>::infinity();
    case F64Tag::neg_inf:
      return -std::numeric_limits<double>::infinity();
  }
  return 0.0;
}

std::string WireReader::str(std::size_t max_len, TextKind kind, const char *field) {
  const std::uint32_t n = u32(field);
  if (!ok()) return {};
  // Length first: a lying length never allocates.
  if (n > max_len) {
    set_error(Errc::string_too_long, field,
              std::to_string(n) + " bytes, limit " + std::to_string(max_len));
    return {};
  }
  if (!take(n, field)) return {};
  const std::string_view view(reinterpret_cast<const char *>(p_), n);
  Status st = check_text(view, max_len, kind);
  if (!st.ok()) {
    set_error(st.code, field, st.message);
    return {};
  }
  p_ += n;
  return std::string(view);
}

void WireReader::bytes(void *out, std::size_t n, const char *field) {
  if (!take(n, field)) {
    std::memset(out, 0, n);
    return;
  }
  std::memcpy(out, p_, n);
  p_ += n;
}

std::size_t WireReader::count(std::size_t max, std::size_t min_element_bytes, const char *field) {
  const std::uint32_t n = u32(field);
  if (!ok()) return 0;
  if (n > max) {
    set_error(Errc::array_too_long, field,
              std::to_string(n) + " elements, limit " + std::to_string(max));
    return 0;
  }
  if (min_element_bytes > 0 && n > remaining() / min_element_bytes) {
    set_error(Errc::payload_truncated, field,
              std::to_string(n) + " elements of at least " + std::to_string(min_element_bytes) +
                  " bytes do not fit in the " + std::to_string(remaining()) + " bytes left");
    return 0;
  }
  return n;
}

void WireReader::bad_enum(unsigned v, unsigned max_value, const char *field) {
  set_error(
      Errc::bad_enum, field,
      "value " + std::to_string(v) + " is not defined (0.." + std::to_string(max_value) + ")");
}

void WireReader::expect_end(const char *what) {
  if (ok() && remaining() != 0)
    set_error(Errc::trailing_bytes, what,
              std::to_string(remaining()) + " bytes after the last field");
}

}  // namespace powergrad::proto
