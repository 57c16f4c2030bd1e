// PowerGrad's per-job record in a job's AdminComment (shown by
// `sacct --format=JobID,AdminComment%200`):
//
//   powergrad={v=1 mode=latency nodes=n[1-2]}
//
// One `powergrad={...}` segment of space-separated key=value fields. Keys are [a-z0-9_];
// values never contain spaces or braces. Whatever else is in AdminComment belongs to other
// tools and is kept: the segment is replaced in place, or appended after "; ".
// doc/prep_powergrad.8 lists every key (v, mode, nodes, and the measured figures
// energy_j, avg_w, cap_min_w, cap_mean_w, cap_max_w, gradient, counters).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace powergrad {

using RecordFields = std::vector<std::pair<std::string, std::string>>;

constexpr const char *kRecordPrefix = "powergrad={";
constexpr int kRecordVersion = 1;

// "powergrad={k=v ...}". Keys not matching [a-z0-9_]+ are dropped; characters a value may
// not hold (space, braces, control characters) become '_'.
std::string format_record(const RecordFields &fields);

// `comment` with its PowerGrad segment replaced by `record` (or `record` appended after
// "; " when there is none; just `record` when the comment is empty).
std::string merge_record_into_comment(const std::string &comment, const std::string &record);

// The fields of the PowerGrad segment in `comment`, or nullopt with *error set when there
// is none or it is malformed.
std::optional<RecordFields> parse_record(const std::string &comment, std::string *error);

// Value of `key` in fields, or nullopt.
std::optional<std::string> record_value(const RecordFields &fields, const std::string &key);

}  // namespace powergrad
