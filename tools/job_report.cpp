#include "tools/job_report.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace powergrad {

namespace {

std::string json_escape(const std::string &s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

// A number as JSON shows it, or a JSON string.
std::string json_value(const std::string &v) {
  if (!v.empty()) {
    char *end = nullptr;
    std::strtod(v.c_str(), &end);
    const bool plain = std::all_of(v.begin(), v.end(), [](char c) {
      return (c >= '0' && c <= '9') || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+';
    });
    if (end && *end == '\0' && plain) return v;
  }
  return "\"" + json_escape(v) + "\"";
}

std::string csv_field(const std::string &s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

SacctParse parse_sacct_report(const std::string &sacct_output) {
  SacctParse out;
  std::istringstream in(sacct_output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    // AdminComment is last and may itself contain '|': split the first 7 only.
    std::vector<std::string> parts;
    size_t pos = 0;
    for (int i = 0; i < 7; ++i) {
      const size_t bar = line.find('|', pos);
      if (bar == std::string::npos) break;
      parts.push_back(line.substr(pos, bar - pos));
      pos = bar + 1;
    }
    if (parts.size() != 7) {
      out.errors.push_back("not a sacct row of the expected format: '" + line + "'");
      continue;
    }
    const std::string comment = line.substr(pos);
    if (comment.find(kRecordPrefix) == std::string::npos) continue;
    JobReportRow r;
    r.job_id = parts[0];
    r.name = parts[1];
    r.user = parts[2];
    r.state = parts[3];
    r.start = parts[4];
    r.end = parts[5];
    r.elapsed_s = std::strtol(parts[6].c_str(), nullptr, 10);
    std::string err;
    auto fields = parse_record(comment, &err);
    if (fields) {
      r.fields = *fields;
    } else {
      r.error = err;
    }
    out.rows.push_back(r);
  }
  return out;
}

std::vector<std::string> record_keys(const std::vector<JobReportRow> &rows) {
  std::vector<std::string> keys;
  for (const auto &r : rows) {
    for (const auto &kv : r.fields) {
      if (kv.first == "v") continue;
      if (std::find(keys.begin(), keys.end(), kv.first) == keys.end()) keys.push_back(kv.first);
    }
  }
  return keys;
}

namespace {

std::vector<std::vector<std::string>> report_cells(const std::vector<JobReportRow> &rows,
                                                   std::vector<std::string> &header) {
  const std::vector<std::string> keys = record_keys(rows);
  header = {"job_id", "name", "user", "state", "elapsed_s"};
  header.insert(header.end(), keys.begin(), keys.end());
  std::vector<std::vector<std::string>> cells;
  for (const auto &r : rows) {
    std::vector<std::string> c = {r.job_id, r.name, r.user, r.state, std::to_string(r.elapsed_s)};
    for (const auto &k : keys) {
      auto v = record_value(r.fields, k);
      c.push_back(v ? *v : (r.error.empty() ? "" : "?"));
    }
    cells.push_back(c);
  }
  return cells;
}

}  // namespace

std::string format_report_table(const std::vector<JobReportRow> &rows) {
  std::vector<std::string> header;
  const auto cells = report_cells(rows, header);
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto &c : cells) {
    for (size_t i = 0; i < c.size(); ++i) width[i] = std::max(width[i], c[i].size());
  }
  std::ostringstream out;
  auto line = [&](const std::vector<std::string> &c) {
    for (size_t i = 0; i < c.size(); ++i) {
      out << c[i];
      if (i + 1 < c.size()) out << std::string(width[i] - c[i].size() + 2, ' ');
    }
    out << '\n';
  };
  line(header);
  for (const auto &c : cells) line(c);
  for (const auto &r : rows) {
    if (!r.error.empty()) out << "job " << r.job_id << ": " << r.error << '\n';
  }
  return out.str();
}

std::string format_report_csv(const std::vector<JobReportRow> &rows) {
  std::vector<std::string> header;
  const auto cells = report_cells(rows, header);
  std::ostringstream out;
  auto line = [&](const std::vector<std::string> &c) {
    for (size_t i = 0; i < c.size(); ++i) out << (i ? "," : "") << csv_field(c[i]);
    out << '\n';
  };
  line(header);
  for (const auto &c : cells) line(c);
  return out.str();
}

std::string format_report_json(const std::vector<JobReportRow> &rows) {
  std::ostringstream out;
  out << "{\"jobs\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto &r = rows[i];
    out << (i ? ", " : "") << "{\"job_id\": \"" << json_escape(r.job_id) << "\", \"name\": \""
        << json_escape(r.name) << "\", \"user\": \"" << json_escape(r.user) << "\", \"state\": \""
        << json_escape(r.state) << "\", \"start\": \"" << json_escape(r.start) << "\", \"end\": \""
        << json_escape(r.end) << "\", \"elapsed_s\": " << r.elapsed_s << ", \"powergrad\": {";
    for (size_t k = 0; k < r.fields.size(); ++k) {
      out << (k ? ", " : "") << "\"" << json_escape(r.fields[k].first)
          << "\": " << json_value(r.fields[k].second);
    }
    out << "}";
    if (!r.error.empty()) out << ", \"error\": \"" << json_escape(r.error) << "\"";
    out << "}";
  }
  out << "]}\n";
  return out.str();
}

}  // namespace powergrad
