#include "jobreport/record.hpp"

#include <cstring>

namespace powergrad {

namespace {

bool valid_key(const std::string &k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string clean_value(const std::string &v) {
  std::string out = v;
  for (char &c : out) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '{' || c == '}' || u < 0x20 || u == 0x7f) c = '_';
  }
  return out;
}

// [begin, end) of the segment "powergrad={...}" in comment, or npos.
std::pair<size_t, size_t> find_segment(const std::string &comment) {
  const size_t b = comment.find(kRecordPrefix);
  if (b == std::string::npos) return {std::string::npos, std::string::npos};
  const size_t close = comment.find('}', b + std::strlen(kRecordPrefix));
  if (close == std::string::npos) return {b, std::string::npos};
  return {b, close + 1};
}

}  // namespace

std::string format_record(const RecordFields &fields) {
  std::string out = kRecordPrefix;
  bool first = true;
  for (const auto &kv : fields) {
    if (!valid_key(kv.first)) continue;
    if (!first) out += ' ';
    first = false;
    out += kv.first;
    out += '=';
    out += clean_value(kv.second);
  }
  out += '}';
  return out;
}

std::string merge_record_into_comment(const std::string &comment, const std::string &record) {
  const auto seg = find_segment(comment);
  if (seg.first != std::string::npos) {
    // An unterminated segment is ours and broken: replace it to the end.
    const size_t end = seg.second == std::string::npos ? comment.size() : seg.second;
    return comment.substr(0, seg.first) + record + comment.substr(end);
  }
  if (comment.empty()) return record;
  return comment + "; " + record;
}

std::optional<RecordFields> parse_record(const std::string &comment, std::string *error) {
  const auto seg = find_segment(comment);
  if (seg.first == std::string::npos) {
    if (error) *error = "no powergrad={...} record";
    return std::nullopt;
  }
  if (seg.second == std::string::npos) {
    if (error) *error = "powergrad record has no closing '}'";
    return std::nullopt;
  }
  const size_t body_begin = seg.first + std::strlen(kRecordPrefix);
  const std::string body = comment.substr(body_begin, seg.second - 1 - body_begin);
  RecordFields fields;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find(' ', pos);
    if (end == std::string::npos) end = body.size();
    const std::string item = body.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos || !valid_key(item.substr(0, eq))) {
      if (error) *error = "malformed field '" + item + "' in powergrad record";
      return std::nullopt;
    }
    fields.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return fields;
}

std::optional<std::string> record_value(const RecordFields &fields, const std::string &key) {
  for (const auto &kv : fields) {
    if (kv.first == key) return kv.second;
  }
  return std::nullopt;
}

}  // namespace powergrad
