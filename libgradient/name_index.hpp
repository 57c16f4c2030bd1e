// Node names to their indices, for the lookups the controller makes for every report and
// every node each period. An open-addressing table (linear probing, at most half full) of
// (hash tag, index) pairs next to the names in index order: a lookup reads one slot of the
// table and, when the tag matches, the name it points to. At 100,000 names that is about
// two cache misses where std::unordered_map walks a bucket's linked nodes (three or more);
// bench_service's service_reports_100k_ms and service_period_100k_ms measure the difference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace powergrad {

class NameIndex {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  // Adds name with index size(); false (nothing added) if it is there already.
  bool insert(const std::string &name) {
    if (find(name) != npos) return false;
    if (2 * (names_.size() + 1) > slots_.size()) rehash(slots_.empty() ? 16 : 2 * slots_.size());
    names_.push_back(name);
    place(hash(name), static_cast<std::uint32_t>(names_.size()));
    return true;
  }

  // The index of name, or npos.
  std::size_t find(std::string_view name) const {
    if (slots_.empty()) return npos;
    const std::size_t h = hash(name);
    const std::uint32_t tag = tag_of(h);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t p = h & mask;; p = (p + 1) & mask) {
      const Slot &s = slots_[p];
      if (s.index1 == 0) return npos;
      if (s.tag == tag && names_[s.index1 - 1] == name) return s.index1 - 1;
    }
  }

  std::size_t size() const { return names_.size(); }
  const std::string &name(std::size_t index) const { return names_[index]; }

 private:
  struct Slot {
    std::uint32_t tag = 0;     // the hash's upper bits
    std::uint32_t index1 = 0;  // index + 1; 0: empty
  };
  static std::size_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  static std::uint32_t tag_of(std::size_t h) {
    return static_cast<std::uint32_t>(static_cast<std::uint64_t>(h) >> 32);
  }
  void place(std::size_t h, std::uint32_t index1) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t p = h & mask;
    while (slots_[p].index1 != 0) p = (p + 1) & mask;
    slots_[p] = Slot{tag_of(h), index1};
  }
  void rehash(std::size_t capacity) {
    slots_.assign(capacity, Slot{});
    for (std::size_t i = 0; i < names_.size(); ++i)
      place(hash(names_[i]), static_cast<std::uint32_t>(i + 1));
  }

  std::vector<Slot> slots_;  // a power of two in size, at most half full
  std::vector<std::string> names_;
};

}  // namespace powergrad
