#include "tools/json.hpp"

#include <cerrno>
#include <cstdlib>

namespace powergrad::json {

const Value *Value::get(const std::string &key) const {
  if (type != Type::object) return nullptr;
  for (const auto &kv : object) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

std::optional<double> Value::num(const std::string &key) const {
  const Value *v = get(key);
  if (!v || v->type != Type::number) return std::nullopt;
  return v->number;
}

std::string Value::str(const std::string &key) const {
  const Value *v = get(key);
  return v && v->type == Type::string ? v->string : std::string();
}

namespace {

constexpr int kMaxDepth = 64;

struct Parser {
  const std::string &s;
  std::size_t i = 0;
  std::string error;

  bool fail(const std::string &what) {
    if (error.empty()) error = "offset " + std::to_string(i) + ": " + what;
    return false;
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  }
  bool lit(const char *word) {
    std::size_t n = 0;
    while (word[n]) ++n;
    if (s.compare(i, n, word) != 0) return fail(std::string("expected ") + word);
    i += n;
    return true;
  }
  static void utf8(std::string &out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  bool string(std::string &out) {
    if (i >= s.size() || s[i] != '"') return fail("expected '\"'");
    ++i;
    while (i < s.size() && s[i] != '"') {
      const char c = s[i++];
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) break;
      const char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i + 4 > s.size()) return fail("short \\u escape");
          unsigned cp = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = s[i++];
            cp <<= 4;
            if (h >= '0' && h <= '9') cp |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') cp |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') cp |= static_cast<unsigned>(h - 'A' + 10);
            else return fail("bad \\u escape");
          }
          utf8(out, cp);
          break;
        }
        default:
          return fail("bad escape");
      }
    }
    if (i >= s.size()) return fail("unterminated string");
    ++i;
    return true;
  }
  bool value(Value &v, int depth) {
    if (depth > kMaxDepth) return fail("nested too deeply");
    ws();
    if (i >= s.size()) return fail("unexpected end");
    const char c = s[i];
    if (c == '{') {
      v.type = Value::Type::object;
      ++i;
      ws();
      if (i < s.size() && s[i] == '}') {
        ++i;
        return true;
      }
      for (;;) {
        ws();
        std::string key;
        if (!string(key)) return false;
        ws();
        if (i >= s.size() || s[i] != ':') return fail("expected ':'");
        ++i;
        Value member;
        if (!value(member, depth + 1)) return false;
        v.object.emplace_back(std::move(key), std::move(member));
        ws();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        if (i < s.size() && s[i] == '}') {
          ++i;
          return true;
        }
        return fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.type = Value::Type::array;
      ++i;
      ws();
      if (i < s.size() && s[i] == ']') {
        ++i;
        return true;
      }
      for (;;) {
        Value item;
        if (!value(item, depth + 1)) return false;
        v.array.push_back(std::move(item));
        ws();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        if (i < s.size() && s[i] == ']') {
          ++i;
          return true;
        }
        return fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.type = Value::Type::string;
      return string(v.string);
    }
    if (c == 't') {
      v.type = Value::Type::boolean;
      v.boolean = true;
      return lit("true");
    }
    if (c == 'f') {
      v.type = Value::Type::boolean;
      return lit("false");
    }
    if (c == 'n') return lit("null");
    if (c == '-' || (c >= '0' && c <= '9')) {
      const char *begin = s.c_str() + i;
      char *end = nullptr;
      errno = 0;
      v.number = std::strtod(begin, &end);
      if (end == begin || errno == ERANGE) return fail("bad number");
      v.type = Value::Type::number;
      i += static_cast<std::size_t>(end - begin);
      return true;
    }
    return fail(std::string("unexpected '") + c + "'");
  }
};

}  // namespace

std::optional<Value> parse(const std::string &text, std::string *error) {
  Parser p{text, 0, {}};
  Value v;
  if (p.value(v, 0)) {
    p.ws();
    if (p.i == text.size()) return v;
    p.fail("trailing characters");
  }
  if (error) *error = p.error;
  return std::nullopt;
}

}  // namespace powergrad::json
