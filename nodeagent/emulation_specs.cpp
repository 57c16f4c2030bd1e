#include "nodeagent/emulation_specs.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "hardware/emulated_counter_source.hpp"

namespace powergrad {

std::optional<std::string> EmulationSpecs::find(std::uint32_t job_id) const {
  auto it = by_job.find(job_id);
  if (it != by_job.end()) return it->second;
  return fallback;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

EmulationSpecsParse parse_emulation_specs(std::string_view text) {
  EmulationSpecsParse out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    if (line.empty() || line.front() == '#') continue;
    std::size_t sp = 0;
    while (sp < line.size() && !std::isspace(static_cast<unsigned char>(line[sp]))) ++sp;
    const std::string id(line.substr(0, sp));
    const std::string spec(trim(line.substr(sp)));
    auto workload = hw::parse_emulated_workload(spec);
    if (!workload.ok()) {
      out.error = where + "job " + id + ": " + workload.message();
      return out;
    }
    if (id == "*") {
      if (out.specs.fallback) {
        out.error = where + "a second '*' line";
        return out;
      }
      out.specs.fallback = spec;
      continue;
    }
    char *end = nullptr;
    errno = 0;
    const unsigned long v = std::strtoul(id.c_str(), &end, 10);
    if (id.empty() || !std::isdigit(static_cast<unsigned char>(id[0])) || *end != '\0' ||
        errno != 0 || v == 0 || v > 0xffffffffUL) {
      out.error = where + "'" + id + "' is not a job id (or '*')";
      return out;
    }
    if (!out.specs.by_job.emplace(static_cast<std::uint32_t>(v), spec).second) {
      out.error = where + "job " + id + " listed twice";
      return out;
    }
  }
  return out;
}

}  // namespace powergrad
