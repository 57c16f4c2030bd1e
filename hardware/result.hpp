// Errors of the hardware layer: a message naming the file (or event, or cgroup) and the errno
// behind it. No function of the hardware layer throws; each says how it fails through Status
// or Result<T>, so the node agent can log and degrade instead of taking slurmd down.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "posix/contract.hpp"

namespace powergrad::hw {

// "ENOENT (No such file or directory)", or "errno 1234" for unknown values.
std::string describe_errno(int errno_value);

// An error: what failed (a sentence naming the file) and the errno, 0 when none applies
// (a parse error, a refused value).
struct Error {
  std::string message;
  int errno_value = 0;
};

// Builds "<path>: <what>: ENOENT (No such file or directory)".
Error errno_error(const std::string &path, const std::string &what, int errno_value);

// Inside a catch block: "<where>: <the exception's what()>" ("unknown exception" for one that
// is not a std::exception), for the catch-all guards that turn throws into Status.
std::string current_exception_message(const char *where);

class [[nodiscard]] Status {
 public:
  static Status success() { return Status(); }
  static Status failure(std::string message, int errno_value = 0) {
    Status s;
    s.ok_ = false;
    s.error_ = Error{std::move(message), errno_value};
    return s;
  }
  static Status failure(Error error) {
    Status s;
    s.ok_ = false;
    s.error_ = std::move(error);
    return s;
  }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const std::string &message() const { return error_.message; }
  int errno_value() const { return error_.errno_value; }
  const Error &error() const { return error_; }

 private:
  bool ok_ = true;
  Error error_;
};

// A value or an Error. value() on an error (or error() on a value) is a programming error;
// check ok() first. Such a call is a contract violation (posix/contract.hpp): it throws
// ContractViolation naming the error it met (aborts in --enable-debug builds), never a
// null dereference.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit on purpose, like std::optional
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  // From a failed Status (an ok one would carry no value: it becomes an EINVAL error).
  Result(Status status)  // NOLINT
      : v_(status.ok() ? Error{"internal error: result without a value", 22 /* EINVAL */}
                       : status.error()) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  const T &value() const & { return checked_value(); }
  T &value() & { return const_cast<T &>(checked_value()); }
  T &&value() && { return std::move(const_cast<T &>(checked_value())); }
  const T &operator*() const & { return value(); }
  const T *operator->() const { return &value(); }
  T *operator->() { return &value(); }
  const Error &error() const {
    const Error *e = std::get_if<Error>(&v_);
    PG_CONTRACT(e != nullptr, "hw::Result::error() on a value");
    return *e;
  }
  const std::string &message() const { return error().message; }
  int errno_value() const { return error().errno_value; }
  Status status() const { return ok() ? Status::success() : Status::failure(error()); }

 private:
  const T &checked_value() const {
    const T *v = std::get_if<T>(&v_);
    if (v == nullptr) {
      ::powergrad::contract_failed(
          __FILE__, __LINE__, "hw::Result::value() on an error: " + std::get<Error>(v_).message);
    }
    return *v;
  }

  std::variant<T, Error> v_;
};

// Joins several failures into one Status ("a; b; c"); the first errno wins.
class StatusCollector {
 public:
  void add(const Status &s);
  void add(const Error &e) { add(Status::failure(e)); }
  Status status() const;
  bool ok() const { return count_ == 0; }

 private:
  std::string messages_;
  int first_errno_ = 0;
  int count_ = 0;
};

}  // namespace powergrad::hw
