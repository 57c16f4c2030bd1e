#include "tools/job_report.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

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
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string make_sacct_delimiter() {
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
    got += static_cast<std::size_t>(n);
  }
  std::string out = "<pg:";
  for (unsigned char b : bytes) {
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", b);
    out += hex;
  }
  return out + ">";
}

std::vector<std::string> sacct_report_args(const std::string &delimiter) {
  return {"--parsable", "--noheader", "--allocations", "--delimiter=" + delimiter,
          std::string("--format=") + kReportSacctFormat};
}

namespace {

// A job id as sacct prints it for an allocation: 12, 12_3, 12_[4-6], 12+0.
bool plausible_job_id(const std::string &id) {
  if (id.empty() || id.size() > 64 || id[0] < '0' || id[0] > '9') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '[' || c == ']' || c == '-' ||
           c == ',' || c == '%';
  });
}

bool parse_long(const std::string &v, long *out) {
  if (v.empty() || v.size() > 18) return false;
  if (!std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  *out = std::strtol(v.c_str(), nullptr, 10);
  return true;
}

}  // namespace

SacctParse parse_sacct_report(const std::string &sacct_output, const std::string &delimiter) {
  SacctParse out;
  if (delimiter.empty()) {
    out.errors.push_back("no delimiter to read sacct's output with");
    return out;
  }
  std::vector<std::string> tokens;
  for (std::size_t pos = 0;;) {
    const std::size_t d = sacct_output.find(delimiter, pos);
    if (d == std::string::npos) {
      tokens.push_back(sacct_output.substr(pos));
      break;
    }
    tokens.push_back(sacct_output.substr(pos, d - pos));
    pos = d + delimiter.size();
  }
  // Every field ends with the delimiter: F fields per row, and after the last row only its
  // newline is left.
  const std::size_t f = kReportSacctFields;
  const std::string &tail = tokens.back();
  if ((tokens.size() - 1) % f != 0 || !(tail.empty() || tail == "\n")) {
    out.errors.push_back("sacct's output does not have " + std::to_string(f) + " fields per row (" +
                         std::to_string(tokens.size() - 1) + " fields in all): not read");
    return out;
  }
  const std::size_t rows = (tokens.size() - 1) / f;
  std::vector<JobReportRow> parsed;
  for (std::size_t i = 0; i < rows; ++i) {
    const std::string *fld = &tokens[i * f];
    std::string job_id = fld[0];
    if (i > 0) {
      // The previous row's newline.
      if (job_id.empty() || job_id[0] != '\n') {
        out.errors.push_back("sacct's output: row " + std::to_string(i + 1) +
                             " does not start on a new line: not read");
        return out;
      }
      job_id.erase(0, 1);
    }
    if (!plausible_job_id(job_id)) {
      out.errors.push_back("sacct's output: row " + std::to_string(i + 1) + " has job id '" +
                           escape_control(job_id) + "': not read");
      return out;
    }
    JobReportRow r;
    r.job_id = job_id;
    r.user = fld[1];
    r.state = fld[2];
    r.start = fld[3];
    r.end = fld[4];
    if (!parse_long(fld[5], &r.elapsed_s)) {
      out.errors.push_back("job " + job_id + ": ElapsedRaw '" + escape_control(fld[5]) +
                           "' is not a number");
    }
    r.name = fld[6];
    const std::string &comment = fld[7];
    if (comment.find(kRecordPrefix) == std::string::npos) continue;
    std::string err;
    auto fields = parse_record(comment, &err);
    if (fields) {
      r.fields = *fields;
    } else {
      r.error = err;
    }
    parsed.push_back(std::move(r));
  }
  out.rows = std::move(parsed);
  return out;
}

std::string escape_control(const std::string &text) {
  std::string out;
  out.reserve(text.size());
  // "\\x" and two hex digits for a byte, "\\u" and four for a code point.
  auto hex = [&out](const char *prefix, unsigned v) {
    static const char digits[] = "0123456789abcdef";
    out += prefix;
    const int n = prefix[1] == 'u' ? 4 : 2;
    for (int k = n - 1; k >= 0; --k) out += digits[(v >> (4 * k)) & 0xf];
  };
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (c == '\r') {
      out += "\\r";
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      hex("\\x", c);
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      // A UTF-8 sequence passes whole when well formed (shortest form, no surrogates); C1
      // controls (U+0080..U+009F, e.g. U+009B, a CSI to some terminals) are escaped.
      const std::size_t len = (c >= 0xc2 && c <= 0xdf)   ? 2
                              : (c >= 0xe0 && c <= 0xef) ? 3
                              : (c >= 0xf0 && c <= 0xf4) ? 4
                                                         : 0;
      std::uint32_t cp = len == 4 ? c & 0x07u : len == 3 ? c & 0x0fu : c & 0x1fu;
      bool good = len != 0 && i + len <= text.size();
      for (std::size_t k = 1; good && k < len; ++k) {
        const auto cc = static_cast<unsigned char>(text[i + k]);
        good = (cc & 0xc0) == 0x80;
        cp = (cp << 6) | (cc & 0x3f);
      }
      if (good) {
        good = (len == 2 && cp >= 0x80) ||
               (len == 3 && cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff)) ||
               (len == 4 && cp >= 0x10000 && cp <= 0x10ffff);
      }
      if (!good) {
        hex("\\x", c);
        ++i;
      } else if (cp < 0xa0) {
        hex("\\u", cp);
        i += len;
      } else {
        out.append(text, i, len);
        i += len;
      }
    }
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
  // A terminal shows what it is given: job names and other tools' text could move the
  // cursor, rewrite earlier lines or start an escape sequence.
  auto cells = report_cells(rows, header);
  for (auto &c : cells) {
    for (auto &cell : c) cell = escape_control(cell);
  }
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
    if (!r.error.empty()) out << "job " << r.job_id << ": " << escape_control(r.error) << '\n';
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
