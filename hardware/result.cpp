#include "hardware/result.hpp"

#include <cstring>
#include <exception>

namespace powergrad::hw {

std::string describe_errno(int errno_value) {
  // strerrorname_np (glibc >= 2.32) gives the symbolic name admins grep for.
  const char *name = strerrorname_np(errno_value);
  char buf[128];
  const char *text = strerror_r(errno_value, buf, sizeof buf);  // GNU variant
  if (name == nullptr) return "errno " + std::to_string(errno_value) + " (" + text + ")";
  return std::string(name) + " (" + text + ")";
}

Error errno_error(const std::string &path, const std::string &what, int errno_value) {
  return Error{path + ": " + what + ": " + describe_errno(errno_value), errno_value};
}

void StatusCollector::add(const Status &s) {
  if (s.ok()) return;
  if (count_ == 0) {
    first_errno_ = s.errno_value();
  } else {
    messages_ += "; ";
  }
  messages_ += s.message();
  ++count_;
}

Status StatusCollector::status() const {
  if (count_ == 0) return Status::success();
  return Status::failure(messages_, first_errno_);
}

std::string current_exception_message(const char *where) {
  try {
    throw;
  } catch (const std::exception &e) {
    return std::string(where) + ": " + e.what();
  } catch (...) {
    return std::string(where) + ": unknown exception";
  }
}

}  // namespace powergrad::hw
