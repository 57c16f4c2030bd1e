// `powergrad report`: PowerGrad's per-job records as sacct returns them, turned into a
// table, JSON or CSV. The sacct call is the caller's; this part only parses and formats,
// so it is tested on captured sacct output.
#pragma once

#include <string>
#include <vector>

#include "jobreport/record.hpp"

namespace powergrad {

// sacct --parsable2 --noheader --allocations --format=JobID,JobName,User,State,Start,End,
//       ElapsedRaw,AdminComment
constexpr const char *kReportSacctFormat =
    "JobID,JobName,User,State,Start,End,ElapsedRaw,AdminComment";

struct JobReportRow {
  std::string job_id, name, user, state, start, end;
  long elapsed_s = 0;
  RecordFields fields;  // PowerGrad's record; empty for jobs without one
  std::string error;    // a malformed record: why (the row is still shown)
};

struct SacctParse {
  std::vector<JobReportRow> rows;   // power-aware jobs only (those with a record)
  std::vector<std::string> errors;  // lines that are not sacct rows of that format
};

// Parses sacct's output (format above). Jobs without a PowerGrad record are left out.
SacctParse parse_sacct_report(const std::string &sacct_output);

// Column keys: the record keys seen across rows, in first-seen order.
std::vector<std::string> record_keys(const std::vector<JobReportRow> &rows);

std::string format_report_table(const std::vector<JobReportRow> &rows);
std::string format_report_csv(const std::vector<JobReportRow> &rows);
std::string format_report_json(const std::vector<JobReportRow> &rows);

}  // namespace powergrad
