// Log lines that a peer can cause at will (a refused HELLO, a non-admin's set-budget, a
// read-only admin session) are summarised instead of written one per event: the first of a
// kind is logged in full; further ones of that kind are counted, and once per interval one
// line says how many there were ("41234 more like this in the last 10 s; last: ..."). A
// kind that stays quiet for a whole interval starts afresh: its next event is logged in
// full again. A flood at thousands of events per second then costs a line or two per kind
// and interval, and an admin still sees the first occurrence, the rate and an example.
//
// With a burst above 1, the first `burst` events of a kind are logged in full and only the
// rest are counted (until the kind has been quiet for an interval and starts afresh): for events
// that are routine one at a time but come in thousands at once (10,000 node sessions closing when a
// network switch restarts).
//
// The kind is a key the caller chooses: the event and its reason (e.g. "refused:
// cred_invalid"), never the peer's address or anything else a peer can vary, or a flood
// could make every line a kind of its own. The number of kinds is bounded anyway: past
// max_kinds, events fall into one catch-all kind.
//
// Plain values in and out: the caller passes the time (any monotonic seconds) and writes
// the lines; nothing here reads a clock or logs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace powergrad {

class LogSummary {
 public:
  struct Line {
    std::string kind;
    std::string text;  // "N more like this in the last T s; last: MESSAGE"
    int tag = 0;       // the tag of the kind's first event (e.g. its log level)
  };

  explicit LogSummary(double interval_s = 10.0, std::size_t max_kinds = 256, std::size_t burst = 1);

  // An event of `kind` at now_s with its full line `message`. Returns true when the caller
  // logs `message` now (the first of its kind in an interval), false when it was counted.
  // `tag` is the caller's (e.g. a log level), handed back with the kind's summary.
  bool admit(const std::string &kind, const std::string &message, double now_s, int tag = 0);

  // The summary lines of the kinds whose interval ended by now_s and that had events
  // counted ("N more like this in the last T s; last: MESSAGE"); call it regularly (e.g.
  // every loop round). Kinds with nothing counted are forgotten.
  std::vector<Line> flush(double now_s);

  // Events counted (not logged) since construction, over all kinds.
  std::uint64_t suppressed_total() const { return suppressed_total_; }
  std::size_t kinds() const { return kinds_.size(); }

 private:
  struct Kind {
    double since_s = 0.0;          // start of the current interval
    std::uint64_t suppressed = 0;  // counted in it
    std::size_t logged = 0;        // logged in full in it
    std::string last;              // the last counted event's line
    int tag = 0;
  };
  double interval_s_;
  std::size_t max_kinds_;
  std::size_t burst_;
  std::unordered_map<std::string, Kind> kinds_;
  std::uint64_t suppressed_total_ = 0;
};

}  // namespace powergrad
