// A small JSON reader for what the controller sends the admin command (ADMIN_STATUS).
// Objects keep their keys' order. Depth and size are bounded by the protocol (4 MiB).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace powergrad::json {

struct Value {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;

  bool is_null() const { return type == Type::null; }
  // The member `key` of an object, or nullptr (also when this is not an object).
  const Value *get(const std::string &key) const;
  // Number of member `key`, or nullopt when absent or not a number.
  std::optional<double> num(const std::string &key) const;
  // String of member `key`, or "" when absent or not a string.
  std::string str(const std::string &key) const;
};

// Parses `text` (whole); nullopt with *error ("offset N: problem") on malformed input.
std::optional<Value> parse(const std::string &text, std::string *error);

}  // namespace powergrad::json
