// `powergrad report`: PowerGrad's per-job records as sacct returns them, turned into a
// table, JSON or CSV. The sacct call is the caller's; this part only parses and formats,
// so it is tested on captured sacct output.
#pragma once

#include <string>
#include <vector>

#include "jobreport/record.hpp"

namespace powergrad {

// What `powergrad report` asks sacct for, and how it reads the answer so that no job's
// name can change the parse. Job names (and AdminComment text other tools put there) may
// hold any character a user can type, '|' and newlines included, so sacct's default
// "a|b|c" lines cannot be split reliably. Instead:
//   - the delimiter is a fresh random string per call (make_sacct_delimiter): nobody can
//     put it into a job name in advance;
//   - -p (--parsable) ends every field, the last one too, with the delimiter, so the
//     output is exactly fields separated by the delimiter, with a newline between rows;
//   - JobID, which no user shapes, comes first: the newline that ends a row is the first
//     character of the next row's first field, and a newline anywhere else is content.
// A row count that does not fit the field count is refused as a whole.
constexpr const char *kReportSacctFormat =
    "JobID,User,State,Start,End,ElapsedRaw,JobName,AdminComment";
constexpr int kReportSacctFields = 8;

// 32 random hex digits between markers; a string no job name holds.
std::string make_sacct_delimiter();

// sacct's arguments (after the program name) for the report, before the user's filters.
std::vector<std::string> sacct_report_args(const std::string &delimiter);

struct JobReportRow {
  std::string job_id, name, user, state, start, end;
  long elapsed_s = 0;
  RecordFields fields;  // PowerGrad's record; empty for jobs without one
  std::string error;    // a malformed record: why (the row is still shown)
};

struct SacctParse {
  std::vector<JobReportRow> rows;   // power-aware jobs only (those with a record)
  std::vector<std::string> errors;  // why (part of) the output was not taken
};

// Parses sacct's output for sacct_report_args(delimiter). Jobs without a PowerGrad record
// are left out.
SacctParse parse_sacct_report(const std::string &sacct_output, const std::string &delimiter);

// `text` safe to print on a terminal: control characters (C0, DEL, C1) and bytes that are
// not UTF-8 become visible escapes (\n, \t, \x1b, \u009b); a backslash doubles.
std::string escape_control(const std::string &text);

// Column keys: the record keys seen across rows, in first-seen order.
std::vector<std::string> record_keys(const std::vector<JobReportRow> &rows);

std::string format_report_table(const std::vector<JobReportRow> &rows);
std::string format_report_csv(const std::vector<JobReportRow> &rows);
std::string format_report_json(const std::vector<JobReportRow> &rows);

}  // namespace powergrad
