#include "libgradient/allocator.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <utility>

#include "libgradient/format.hpp"
#include "libgradient/numeric.hpp"
#include "libgradient/parallel.hpp"
#include "libgradient/types.hpp"

namespace powergrad {

namespace {

// Why [min_w, max_w] cannot be a node's limits, or empty. A group may have no upper limit.
std::string check_limits(double min_w, double max_w, bool allow_infinite_max) {
  // The usual case, without a call: finite, 0 <= min_w <= max_w.
  if (std::isfinite(min_w) && min_w >= 0.0 && std::isfinite(max_w) && min_w <= max_w) return {};
  if (allow_infinite_max && max_w == std::numeric_limits<double>::infinity())
    return PowerRange{min_w, min_w}.check();
  return PowerRange{min_w, max_w}.check();
}

}  // namespace

bool fit_to_budget(double *grants_w, const double *floors_w, std::size_t n, double budget_w) {
  double sum = sum_in_order(grants_w, n);
  while (sum > budget_w) {
    // sum > budget implies excess > 0 in IEEE arithmetic (gradual underflow).
    double excess = sum - budget_w;
    bool changed = false;
    for (std::size_t k = n; k-- > 0 && excess > 0.0;) {
      const double room = grants_w[k] - floors_w[k];
      if (!(room > 0.0)) continue;
      double lowered = grants_w[k] - std::min(room, excess);
      // An excess below half an ulp of the grant would not change it: step one ulp.
      if (lowered == grants_w[k]) lowered = std::nextafter(grants_w[k], floors_w[k]);
      if (lowered < floors_w[k]) lowered = floors_w[k];
      excess -= grants_w[k] - lowered;
      grants_w[k] = lowered;
      changed = true;
    }
    if (!changed) return false;
    sum = sum_in_order(grants_w, n);
  }
  return true;
}

// ---------------------------------------------------------------- AllocTree

std::uint64_t AllocTree::next_shape() {
  static std::atomic<std::uint64_t> last{0};
  return ++last;
}

AllocTree::AllocTree(double root_min_w, double root_max_w, std::string root_name) {
  nodes_.push_back({});
  nodes_[0].min_w = root_min_w;
  nodes_[0].max_w = root_max_w;
  curves_.emplace_back();
  names_.push_back(std::move(root_name));
}

NodeId AllocTree::add_node(NodeId parent, double min_w, double max_w, bool leaf, std::string name) {
  if (!contains(parent) || nodes_[parent].leaf || nodes_.size() >= kNoNode) return kNoNode;
  const NodeId id = static_cast<NodeId>(nodes_.size());
  Node n;
  n.parent = parent;
  n.min_w = min_w;
  n.max_w = max_w;
  n.leaf = leaf;
  nodes_.push_back(n);
  Node &p = nodes_[parent];
  if (p.last_child == kNoNode)
    p.first_child = id;
  else
    nodes_[p.last_child].next_sibling = id;
  p.last_child = id;
  shape_ = next_shape();
  curves_.emplace_back();
  names_.push_back(std::move(name));
  return id;
}

NodeId AllocTree::add_group(NodeId parent, double min_w, double max_w, std::string name) {
  return add_node(parent, min_w, max_w, false, std::move(name));
}

NodeId AllocTree::add_leaf(NodeId parent, double min_w, double max_w, GainCurve curve,
                           std::string name) {
  const NodeId id = add_node(parent, min_w, max_w, true, std::move(name));
  if (id != kNoNode) curves_[id] = std::move(curve);
  return id;
}

bool AllocTree::set_curve(NodeId leaf, GainCurve curve) {
  if (!contains(leaf) || !nodes_[leaf].leaf) return false;
  curves_[leaf] = std::move(curve);
  return true;
}

std::string AllocTree::describe(NodeId id) const {
  if (contains(id) && !names_[id].empty()) return names_[id];
  return "node #" + std::to_string(id);
}

std::vector<NodeId> AllocTree::children(NodeId id) const {
  std::vector<NodeId> out;
  if (!contains(id)) return out;
  for (NodeId c = nodes_[id].first_child; c != kNoNode; c = nodes_[c].next_sibling)
    out.push_back(c);
  return out;
}

// ---------------------------------------------------------------- TreeAllocator

// Every node offers its parent a curve: an unsorted list of pieces. A leaf's are its curve
// cut to [0, max - min] (padded with slope 0). A group's are its children's pieces between
// two cut points in cumulative watts, steepest first: [lo - floors, hi - floors], i.e. the
// watts its own floor forces on it are skipped and those beyond its own cap dropped; pieces at
// a cut point's slope are merged into one clipped piece, as a sorted merge would do. A group
// whose own limits cut nothing just passes its children's pieces on (no copy).
//
// Top-down, the root's grant fixes a water level (a slope) by selection. A group then gets
// its floor, its pieces steeper than the level, and a share of those at it; inside it, the
// same level holds unless its own floor or cap cut the curve: a group whose floor binds is
// split at its floor's cut slope, one whose cap binds at its cap's. So each group's level is
// its parent's clamped to [cap cut, floor cut], with no further search.

namespace {

constexpr double kNoLevel = -std::numeric_limits<double>::infinity();

}  // namespace

namespace {

// Slopes are >= 0 (-0.0 taken as 0): their bit patterns order as they do. The exponent and
// the top 4 bits of the mantissa make buckets of 1/16 of a binary order of magnitude.
constexpr std::size_t kBuckets = std::size_t{1} << 15;
inline std::size_t bucket_of(double slope) {
  const double s = slope + 0.0;
  std::uint64_t bits;
  std::memcpy(&bits, &s, sizeof bits);
  return static_cast<std::size_t>(bits >> 48) & (kBuckets - 1);
}

}  // namespace

// A leaf's pieces are its curve cut to [0, max - min] (padded with slope 0), read from the
// curve itself: no copy is made but the one a group gathers.
template <typename F>
void TreeAllocator::for_each_leaf_piece(const AllocTree &tree, NodeId id, F &&f) {
  const AllocTree::Node &node = tree.nodes_[id];
  double room = node.max_w - node.min_w;
  for (const GainSegment &s : tree.curves_[id].segments()) {
    if (!(room > 0.0)) break;
    const double width = std::min(s.width_w, room);
    f(s.slope, width);
    room -= width;
  }
  if (room > 0.0) f(0.0, room);  // past the curve: no gain
}

bool TreeAllocator::build_leaf(const AllocTree &tree, NodeId id, AllocResult &result) {
  const AllocTree::Node &node = tree.nodes_[id];
  std::string why = check_limits(node.min_w, node.max_w, false);
  const GainCurve &curve = tree.curves_[id];
  if (why.empty() && !curve.valid()) why = curve.error();
  if (!why.empty()) {
    result.error = tree.describe(id) + ": " + why;
    result.failed_index = id;
    return false;
  }
  lo_w_[id] = node.min_w;
  hi_w_[id] = node.max_w;
  floor_sum_w_[id] = node.min_w;
  pass_through_[id] = 0;
  leaf_begin_[id] = kNoIndex;  // until a group gathers its pieces (after every leaf's build)
  // curve_w_: only a pass-through parent reads it, which sets it (build_group).
  return true;
}

double TreeAllocator::leaf_width(const AllocTree &tree, NodeId id) {
  double total = 0.0;
  for_each_leaf_piece(tree, id, [&](double, double width) { total += width; });
  return total;
}

bool TreeAllocator::build_group(const AllocTree &tree, NodeId id, AllocResult &result, Work &w) {
  const AllocTree::Node &node = tree.nodes_[id];
  if (std::string why = check_limits(node.min_w, node.max_w, true); !why.empty()) {
    result.error = tree.describe(id) + ": " + why;
    result.failed_index = id;
    return false;
  }
  double floors = 0.0;
  double caps = 0.0;
  const NodeId *kids = kid_list_.data() + kid_begin_[id];
  const std::size_t k = kid_begin_[id + 1] - kid_begin_[id];
  for (std::size_t j = 0; j < k; ++j) {
    floors += lo_w_[kids[j]];
    caps += hi_w_[kids[j]];
  }
  const double lo = std::max(node.min_w, floors);
  const double hi = std::min(node.max_w, caps);
  if (lo > hi) {
    result.error = tree.describe(id) + ": ";
    if (floors > node.max_w)
      result.error += "its children's floors sum to " + format_w(floors) + ", above its limit " +
                      format_w(node.max_w);
    else
      result.error += "its floor " + format_w(node.min_w) + " is above the " + format_w(caps) +
                      " its children can take";
    result.failed_index = id;
    return false;
  }
  lo_w_[id] = lo;
  hi_w_[id] = hi;
  floor_sum_w_[id] = floors;
  // Nobody reads the root's curve; other groups copy only when their limits cut.
  floor_cut_[id] = std::numeric_limits<double>::infinity();
  cap_cut_[id] = kNoLevel;
  if (id == AllocTree::kRoot || (node.min_w <= floors && node.max_w >= caps)) {
    pass_through_[id] = 1;
    double curve = 0.0;
    for (std::size_t j = 0; j < k; ++j) {
      const NodeId c = kids[j];
      prefetch_leaves(tree, kids, j, k);
      if (tree.nodes_[c].leaf) curve_w_[c] = leaf_width(tree, c);
      curve += curve_w_[c];
    }
    curve_w_[id] = curve;
    return true;
  }
  pass_through_[id] = 0;
  // Gathered in memory of the group's own (the split finds its leaves' pieces there).
  const std::uint32_t ord = ord_[id];
  std::vector<Piece> &gathered = gathered_[ord];
  gathered.clear();
  start_histogram(w);
  for_each_child_piece(
      tree, id,
      [&](const Piece &p) {
        gathered.push_back(p);
        add_to_histogram(w, p);
      },
      [&](NodeId leaf, std::size_t count) {
        leaf_src_[leaf] = ord;
        leaf_end_[leaf] = gathered.size();
        leaf_begin_[leaf] = leaf_end_[leaf] - count;
      },
      w);
  keep_window(id, lo - floors, hi - floors, w);
  return true;
}

// Keeps the pieces id gathered (gathered_) that lie in [start_w, end_w] of cumulative width,
// steepest first, as id's own curve (kept_). The histogram (start_histogram()) holds them.
void TreeAllocator::keep_window(NodeId id, double start_w, double end_w, Work &w) {
  const std::vector<Piece> &gathered = gathered_[ord_[id]];
  std::vector<Piece> &kept = kept_[ord_[id]];
  const std::size_t n = gathered.size();
  const Piece *a = gathered.data();
  const auto each = [&](auto &&f) {
    for (std::size_t i = 0; i < n; ++i) f(a[i]);
  };
  // The histogram of these pieces was built as they were gathered: one for both levels.
  // Their buckets are copied out in one pass (find_level() would take one each); should
  // rounding put a level past its bucket, find_level() takes over, with the same result.
  Level last{kNoLevel, 0.0, 0.0};
  Level first{std::numeric_limits<double>::infinity(), 0.0, 0.0};
  double last_above = 0.0;
  double first_above = 0.0;
  const std::size_t last_b = level_bucket(w, end_w, last_above);
  const std::size_t first_b = start_w > 0.0 ? level_bucket(w, start_w, first_above) : kNoIndex;
  w.bucket.clear();
  w.bucket2.clear();
  if (last_b != kNoIndex || first_b != kNoIndex) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t b = bucket_of(a[i].slope);
      if (b == last_b) w.bucket.push_back(a[i]);
      if (b == first_b) w.bucket2.push_back(a[i]);
    }
  }
  bool last_done = false;
  bool first_done = start_w <= 0.0;
  if (last_b != kNoIndex) {
    const Level in = partition_level(w.bucket.data(), w.bucket.size(), end_w - last_above);
    if (in.slope != kNoLevel) {
      last = {in.slope, last_above + in.above_w, in.at_w};
      last_done = true;
    }
  }
  if (first_b != kNoIndex) {
    const Level in = partition_level(w.bucket2.data(), w.bucket2.size(), start_w - first_above);
    if (in.slope != kNoLevel) {
      first = {in.slope, first_above + in.above_w, in.at_w};
      first_done = true;
    }
  }
  if (!last_done) last = find_level(each, end_w, w);
  if (!first_done) first = find_level(each, start_w, w);
  clear_histogram(w);
  floor_cut_[id] = first.slope;
  cap_cut_[id] = last.slope;
  kept.clear();
  double total = 0.0;
  double first_weight = 0.0;
  double last_weight = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const Piece &p = a[i];
    if (p.slope > first.slope || p.slope < last.slope) continue;
    if (p.slope == first.slope) {
      first_weight += p.weight;
    } else if (p.slope == last.slope) {
      last_weight += p.weight;
    } else {
      kept.push_back(p);
      total += p.width_w;
    }
  }
  const auto keep = [&](double slope, double width, double weight) {
    if (std::isfinite(slope) && width > 0.0) {
      kept.push_back({slope, width, weight});
      total += width;
    }
  };
  if (first.slope == last.slope) {
    keep(first.slope, end_w - start_w, first_weight);
  } else {
    keep(first.slope, first.above_w + first.at_w - start_w, first_weight);
    keep(last.slope, end_w - last.above_w, last_weight);
  }
  curve_w_[id] = total;
}

// A leaf's curve lives in its own memory: reading many leaves one after the other waits on
// memory once per leaf unless the next ones are fetched ahead. kids[i] is read next.
void TreeAllocator::prefetch_leaves(const AllocTree &tree, const NodeId *kids, std::size_t i,
                                    std::size_t end) {
  constexpr std::size_t kAhead = 4;
  if (i + 2 * kAhead < end) {
    const NodeId far = kids[i + 2 * kAhead];
    __builtin_prefetch(&tree.nodes_[far]);
    __builtin_prefetch(&tree.curves_[far]);
  }
  if (i + kAhead < end) {
    const GainSegment *seg = tree.curves_[kids[i + kAhead]].segments().data();
    __builtin_prefetch(seg);
    __builtin_prefetch(seg + 4);
  }
}

// Depth first, children in order; iterative, because a chain of pass-through groups may be
// as deep as the tree.
template <typename F, typename LeafDone>
void TreeAllocator::for_each_child_piece(const AllocTree &tree, NodeId id, F &&f,
                                         LeafDone &&leaf_done, Work &w) {
  for_each_piece_of(tree, kid_begin_[id], kid_begin_[id + 1], f, leaf_done, w);
}

template <typename F, typename LeafDone>
void TreeAllocator::for_each_piece_of(const AllocTree &tree, std::size_t begin, std::size_t end,
                                      F &&f, LeafDone &&leaf_done, Work &w) {
  std::vector<Frame> &frames = w.frames;
  frames.clear();
  frames.push_back({begin, end});
  while (!frames.empty()) {
    Frame &frame = frames.back();
    if (frame.next == frame.end) {
      frames.pop_back();
      continue;
    }
    prefetch_leaves(tree, kid_list_.data(), frame.next, frame.end);
    const NodeId v = kid_list_[frame.next++];
    if (tree.nodes_[v].leaf) {
      std::size_t count = 0;
      for_each_leaf_piece(tree, v, [&](double slope, double width) {
        f(Piece{slope, width, 1.0});
        ++count;
      });
      leaf_done(v, count);
    } else if (!pass_through_[v]) {
      for (const Piece &p : kept_[ord_[v]]) f(p);
    } else {
      frames.push_back({kid_begin_[v], kid_begin_[v + 1]});
    }
  }
}

void TreeAllocator::add_leaf_share(const AllocTree &tree, NodeId id, double level, Share &share) {
  if (leaf_begin_[id] != kNoIndex) {  // gathered by a group: the same pieces, in a row
    const Piece *gathered = gathered_[leaf_src_[id]].data();
    for (std::size_t i = leaf_begin_[id]; i < leaf_end_[id]; ++i) {
      const Piece &p = gathered[i];
      if (p.slope > level) {
        share.above_w += p.width_w;
      } else if (p.slope == level) {
        share.at_w += p.width_w;
        share.weight += 1.0;
      }
    }
    return;
  }
  for_each_leaf_piece(tree, id, [&](double slope, double width) {
    if (slope > level) {
      share.above_w += width;
    } else if (slope == level) {
      share.at_w += width;
      share.weight += 1.0;
    }
  });
}

TreeAllocator::Share TreeAllocator::share_at(const AllocTree &tree, NodeId id, double level,
                                             Work &w) {
  Share share{0.0, 0.0, 0.0};
  if (tree.nodes_[id].leaf) {
    add_leaf_share(tree, id, level, share);
    return share;
  }
  std::vector<NodeId> &stack = w.stack;
  stack.clear();
  stack.push_back(id);
  while (!stack.empty()) {
    const NodeId v = stack.back();
    stack.pop_back();
    if (tree.nodes_[v].leaf) {
      add_leaf_share(tree, v, level, share);
      continue;
    }
    if (pass_through_[v]) {
      stack.insert(stack.end(), kid_list_.begin() + static_cast<std::ptrdiff_t>(kid_begin_[v]),
                   kid_list_.begin() + static_cast<std::ptrdiff_t>(kid_begin_[v + 1]));
      continue;
    }
    for (const Piece &p : kept_[ord_[v]]) {
      if (p.slope > level) {
        share.above_w += p.width_w;
      } else if (p.slope == level) {
        share.at_w += p.width_w;
        share.weight += p.weight;
      }
    }
  }
  return share;
}

// Weighted selection without moving the pieces: the widths summed by slope bucket (one
// pass), the bucket where the cumulative width, steepest first, reaches the target, and
// the exact level among that bucket's pieces (copied out in a second pass: few).
// each(f) calls f on every piece, in the same order each time.
template <typename Each>
TreeAllocator::Level TreeAllocator::select_level(Each &&each, double target_w, Work &w) {
  start_histogram(w);
  each([&](const Piece &p) { add_to_histogram(w, p); });
  const Level level = find_level(each, target_w, w);
  clear_histogram(w);
  return level;
}

// The histogram select_level() works from, built piece by piece (so that a caller that
// visits the pieces anyway need not pass over them once more), and used for any number of
// targets over the same pieces before clear_histogram().
void TreeAllocator::start_histogram(Work &w) {
  w.bucket_w.resize(kBuckets, 0.0);  // all zero between calls
  w.hist_top = 0;
  w.hist_bottom = kBuckets - 1;
}

inline void TreeAllocator::add_to_histogram(Work &w, const Piece &p) {
  const std::size_t b = bucket_of(p.slope);
  w.bucket_w[b] += p.width_w;
  w.hist_top = std::max(w.hist_top, b);
  w.hist_bottom = std::min(w.hist_bottom, b);
}

void TreeAllocator::clear_histogram(Work &w) {
  if (w.hist_top >= w.hist_bottom)
    std::fill(w.bucket_w.begin() + static_cast<std::ptrdiff_t>(w.hist_bottom),
              w.bucket_w.begin() + static_cast<std::ptrdiff_t>(w.hist_top) + 1, 0.0);
}

// The first bucket, steepest first, at which the histogram's cumulative width passes
// target_w, with the width above it in `above` (as find_level() starts); kNoIndex if none.
std::size_t TreeAllocator::level_bucket(const Work &w, double target_w, double &above) {
  above = 0.0;
  std::size_t b = w.hist_top + 1;
  while (b-- > w.hist_bottom) {
    if (!(above + w.bucket_w[b] > target_w)) {
      above += w.bucket_w[b];
      continue;
    }
    return b;
  }
  return kNoIndex;
}

// The level for target_w from the histogram of the pieces each(f) visits.
template <typename Each>
TreeAllocator::Level TreeAllocator::find_level(Each &&each, double target_w, Work &w) {
  const std::size_t top = w.hist_top;
  const std::size_t bottom = w.hist_bottom;
  Level level{kNoLevel, 0.0, 0.0};
  double above = 0.0;
  std::size_t b = top + 1;
  while (b-- > bottom) {
    if (!(above + w.bucket_w[b] > target_w)) {
      above += w.bucket_w[b];
      continue;
    }
    // The level is in bucket b (or, by rounding, in a later one).
    w.bucket.clear();
    each([&](const Piece &p) {
      if (bucket_of(p.slope) == b) w.bucket.push_back(p);
    });
    const Level in = partition_level(w.bucket.data(), w.bucket.size(), target_w - above);
    if (in.slope != kNoLevel) {
      level = {in.slope, above + in.above_w, in.at_w};
      break;
    }
    above += in.above_w;
  }
  if (level.slope == kNoLevel) level.above_w = above;
  return level;
}

// Weighted selection over a[0, n) (which it reorders): quickselect with a three-way
// partition around a median-of-three slope, falling back to sorting what is left after
// too many rounds or once few pieces remain. Deterministic for a given input order.
TreeAllocator::Level TreeAllocator::partition_level(Piece *a, std::size_t n, double target_w) {
  std::size_t lo = 0;
  std::size_t hi = n;
  double above = 0.0;
  int rounds = 8;
  for (std::size_t m = hi; m > 0; m >>= 1) rounds += 2;
  while (hi - lo > 32 && rounds-- > 0) {
    const double x = a[lo].slope, y = a[lo + (hi - lo) / 2].slope, z = a[hi - 1].slope;
    const double pivot = std::max(std::min(x, y), std::min(std::max(x, y), z));
    std::size_t i = lo, j = lo, k = hi;  // [lo,i) steeper, [i,j) equal, [k,hi) flatter
    double steeper_w = 0.0;
    double equal_w = 0.0;
    while (j < k) {
      const double s = a[j].slope;
      if (s > pivot) {
        steeper_w += a[j].width_w;
        std::swap(a[i++], a[j++]);
      } else if (s < pivot) {
        std::swap(a[j], a[--k]);
      } else {
        equal_w += a[j++].width_w;
      }
    }
    if (above + steeper_w > target_w) {
      hi = i;
    } else if (above + steeper_w + equal_w > target_w) {
      return {pivot, above + steeper_w, equal_w};
    } else {
      above += steeper_w + equal_w;
      lo = k;
    }
  }
  std::sort(a + lo, a + hi, [](const Piece &p, const Piece &q) { return p.slope > q.slope; });
  for (std::size_t i = lo; i < hi;) {
    const double slope = a[i].slope;
    double width = 0.0;
    for (; i < hi && a[i].slope == slope; ++i) width += a[i].width_w;
    if (above + width > target_w) return {slope, above, width};
    above += width;
  }
  return {kNoLevel, above, 0.0};
}

// The root's children are split in chunks when the tree is large: the root's water level
// is the one selection over every piece of the tree, and each child's share of it a pass
// over that child's. Chunks are runs of children fixed by the tree alone (never by the
// threads), so the result does not depend on the threads; a small tree is one chunk and
// goes the way select_level() does.
std::size_t TreeAllocator::root_chunks(std::size_t kids) const {
  return leaves_ >= root_chunk_leaves_ ? std::min(kids, kRootChunks) : 1;
}

// select_level() over the root's children's pieces, chunk by chunk: a histogram per chunk
// (summed in chunk order), then the pieces of the level's bucket, per chunk, in child order.
// Should rounding put the level past its bucket, find_level() takes over (one thread).
TreeAllocator::Level TreeAllocator::root_level(const AllocTree &tree, double target_w,
                                               std::size_t chunks, Work &w) {
  const std::size_t begin = kid_begin_[AllocTree::kRoot];
  const std::size_t k = kid_begin_[AllocTree::kRoot + 1] - begin;
  const auto first = [&](std::size_t t) { return begin + k * t / chunks; };
  const auto no_leaf = [](NodeId, std::size_t) {};
  if (chunk_work_.size() < chunks) chunk_work_.resize(chunks);
  parallel_tasks(chunks, threads_, [&](std::size_t t, std::size_t worker) {
    Work &cw = chunk_work_[t];
    start_histogram(cw);
    for_each_piece_of(
        tree, first(t), first(t + 1), [&](const Piece &p) { add_to_histogram(cw, p); }, no_leaf,
        work_[worker]);
  });
  start_histogram(w);
  for (std::size_t t = 0; t < chunks; ++t) {
    w.hist_top = std::max(w.hist_top, chunk_work_[t].hist_top);
    w.hist_bottom = std::min(w.hist_bottom, chunk_work_[t].hist_bottom);
  }
  for (std::size_t b = w.hist_bottom; b <= w.hist_top; ++b) {
    double sum = 0.0;
    for (std::size_t t = 0; t < chunks; ++t) sum += chunk_work_[t].bucket_w[b];
    w.bucket_w[b] = sum;
  }
  for (std::size_t t = 0; t < chunks; ++t) clear_histogram(chunk_work_[t]);
  Level level{kNoLevel, 0.0, 0.0};
  double above = 0.0;
  const std::size_t b = level_bucket(w, target_w, above);
  if (b != kNoIndex) {
    parallel_tasks(chunks, threads_, [&](std::size_t t, std::size_t worker) {
      std::vector<Piece> &bucket = chunk_work_[t].bucket;
      bucket.clear();
      for_each_piece_of(
          tree, first(t), first(t + 1),
          [&](const Piece &p) {
            if (bucket_of(p.slope) == b) bucket.push_back(p);
          },
          no_leaf, work_[worker]);
    });
    w.bucket.clear();
    for (std::size_t t = 0; t < chunks; ++t)
      w.bucket.insert(w.bucket.end(), chunk_work_[t].bucket.begin(), chunk_work_[t].bucket.end());
    const Level in = partition_level(w.bucket.data(), w.bucket.size(), target_w - above);
    if (in.slope != kNoLevel) level = {in.slope, above + in.above_w, in.at_w};
  }
  if (level.slope == kNoLevel) {
    const auto each = [&](auto &&f) {
      for_each_child_piece(tree, AllocTree::kRoot, f, no_leaf, w);
    };
    level = find_level(each, target_w, w);
  }
  clear_histogram(w);
  return level;
}

void TreeAllocator::split(const AllocTree &tree, NodeId id, double grant_w, double *grants,
                          Work &w) {
  const NodeId *kids = kid_list_.data() + kid_begin_[id];
  const std::size_t k = kid_begin_[id + 1] - kid_begin_[id];
  if (k == 0) return;
  const double above_floors = grant_w - floor_sum_w_[id];
  const std::size_t chunks = id == AllocTree::kRoot ? root_chunks(k) : 1;
  if (id == AllocTree::kRoot) {
    double offered = 0.0;
    for (std::size_t j = 0; j < k; ++j) offered += curve_w_[kids[j]];
    level_[id] = kNoLevel;
    if (above_floors < offered) {
      const auto each = [&](auto &&f) {
        for_each_child_piece(
            tree, id, f, [](NodeId, std::size_t) {}, w);
      };
      level_[id] = chunks > 1 ? root_level(tree, above_floors, chunks, w).slope
                              : select_level(each, above_floors, w).slope;
    }
  }
  const double level = level_[id];
  std::vector<double> &kid_grants = w.kid_grants;
  std::vector<double> &kid_floors = w.kid_floors;
  std::vector<TieShare> &ties = w.ties;
  kid_grants.resize(k);
  kid_floors.resize(k);
  for (std::size_t j = 0; j < k; ++j) kid_floors[j] = lo_w_[kids[j]];

  if (level == kNoLevel) {
    for (std::size_t j = 0; j < k; ++j) kid_grants[j] = hi_w_[kids[j]];
  } else {
    // Pieces steeper than the level are taken whole; those at the level are shared.
    const auto kid_share = [&](std::size_t j, Work &kw) {
      Share s{0.0, 0.0, 0.0};
      if (tree.nodes_[kids[j]].leaf) {
        if (leaf_begin_[kids[j]] == kNoIndex) prefetch_leaves(tree, kids, j, k);
        add_leaf_share(tree, kids[j], level, s);
      } else {
        s = share_at(tree, kids[j], level, kw);
      }
      return s;
    };
    if (chunks > 1) {  // each child's share on its own: the same sums on any thread
      kid_shares_.resize(k);
      parallel_tasks(chunks, threads_, [&](std::size_t t, std::size_t worker) {
        for (std::size_t j = k * t / chunks; j < k * (t + 1) / chunks; ++j)
          kid_shares_[j] = kid_share(j, work_[worker]);
      });
    }
    ties.clear();
    double taken = 0.0;
    double tie_weight = 0.0;
    for (std::size_t j = 0; j < k; ++j) {
      const Share s = chunks > 1 ? kid_shares_[j] : kid_share(j, w);
      kid_grants[j] = lo_w_[kids[j]] + s.above_w;
      taken += s.above_w;
      if (s.at_w > 0.0) {
        ties.push_back({static_cast<std::uint32_t>(j), s.at_w, s.weight});
        tie_weight += s.weight;
      }
    }
    // Water level: sorted by how soon each tied share fills (cap per weight), every child
    // gets weight * level until full; the last one takes what is left.
    std::sort(ties.begin(), ties.end(), [](const TieShare &a, const TieShare &b) {
      const double fa = a.cap_w * b.weight;
      const double fb = b.cap_w * a.weight;
      return fa != fb ? fa < fb : a.child < b.child;
    });
    double left = std::max(0.0, above_floors - taken);
    for (const TieShare &t : ties) {
      if (!(left > 0.0)) break;
      double give = tie_weight > t.weight ? t.weight * (left / tie_weight) : left;
      give = std::min(give, t.cap_w);
      kid_grants[t.child] += give;
      left -= give;
      tie_weight -= t.weight;
    }
    for (std::size_t j = 0; j < k; ++j) kid_grants[j] = std::min(kid_grants[j], hi_w_[kids[j]]);
  }
  fit_to_budget(kid_grants.data(), kid_floors.data(), k, grant_w);
  for (std::size_t j = 0; j < k; ++j) {
    const NodeId c = kids[j];
    grants[c] = kid_grants[j];
    // min/max rather than std::clamp: float noise must not make inverted bounds UB.
    if (!tree.nodes_[c].leaf) level_[c] = std::min(std::max(level, cap_cut_[c]), floor_cut_[c]);
  }
}

void TreeAllocator::set_threads(std::size_t threads, std::size_t min_leaves_per_thread) {
  threads_ = std::max<std::size_t>(1, threads);
  min_leaves_ = std::max<std::size_t>(1, min_leaves_per_thread);
}

AllocResult TreeAllocator::allocate(const AllocTree &tree, double budget_w) {
  AllocResult result;
  if (!std::isfinite(budget_w) || budget_w < 0.0) {
    result.error = "budget " + format_w(budget_w) + " is negative or not finite";
    return result;
  }
  const std::size_t n = tree.size();
  if (n == 0) {  // only a tree moved from has no root
    result.error = "the tree has no root (was it moved from?)";
    return result;
  }
  if (tree.shape() != shape_) take_shape(tree);
  // Every node's entries are written before they are read: a leaf's by build_leaf(), a
  // group's by build_group(), both before any reader (which reads only built nodes), and
  // a group's level_ by its parent's split().
  lo_w_.resize(n);
  hi_w_.resize(n);
  floor_sum_w_.resize(n);
  curve_w_.resize(n);
  pass_through_.resize(n);
  floor_cut_.resize(n);
  cap_cut_.resize(n);
  level_.resize(n);
  leaf_begin_.resize(n);
  leaf_end_.resize(n);
  leaf_src_.resize(n);
  state_.assign(n, kBuilt);
  if (work_.size() < threads_) work_.resize(threads_);

  // Bottom-up: the leaves, then the groups by height (a group's children are built before
  // it), the groups of one height on up to threads_ threads. A node one of whose children
  // failed is not built; the failure reported is the one of the highest id, which is the one
  // building by falling id (children have larger ids than their parents) would meet first.
  // failed_[t]: the failure of leaf chunk t (its highest), then of each group in by_height_
  // order (kNoIndex: none).
  const std::size_t chunks = std::max<std::size_t>(1, std::min(threads_, n / min_leaves_));
  failed_.resize(chunks + groups_.size());
  parallel_tasks(chunks, threads_, [&](std::size_t t, std::size_t) {
    Failure &f = failed_[t];
    f.id = kNoIndex;
    AllocResult r;
    for (std::size_t i = n * t / chunks; i < n * (t + 1) / chunks; ++i) {
      const NodeId id = static_cast<NodeId>(i);
      if (!tree.nodes_[id].leaf) continue;
      if (!build_leaf(tree, id, r)) {
        state_[id] = kFailed;
        f = {i, std::move(r.error)};  // ascending: the last is the highest
      }
    }
  });
  for (std::size_t wave = 0; wave + 1 < wave_begin_.size(); ++wave) {
    const std::size_t first = wave_begin_[wave];
    const std::size_t count = wave_begin_[wave + 1] - first;
    parallel_tasks(count, threads_, [&](std::size_t t, std::size_t worker) {
      const NodeId id = by_height_[first + t];
      Failure &f = failed_[chunks + first + t];
      f.id = kNoIndex;
      for (std::size_t c = kid_begin_[id]; c < kid_begin_[id + 1]; ++c)
        if (state_[kid_list_[c]] != kBuilt) {
          state_[id] = kBlocked;
          return;
        }
      AllocResult r;
      if (!build_group(tree, id, r, work_[worker])) {
        state_[id] = kFailed;
        f = {id, std::move(r.error)};
      }
    });
  }
  const Failure *worst = nullptr;
  for (const Failure &f : failed_)
    if (f.id != kNoIndex && (!worst || f.id > worst->id)) worst = &f;
  if (worst) {
    result.error = worst->error;
    result.failed_index = worst->id;
    return result;
  }
  if (budget_w < lo_w_[AllocTree::kRoot]) {
    result.error = "budget " + format_w(budget_w) + " is below the floor " +
                   format_w(lo_w_[AllocTree::kRoot]) + " of " + tree.describe(AllocTree::kRoot);
    return result;
  }
  // Top-down: the groups by depth (a group's grant is split after its parent's), those of one
  // depth on up to threads_ threads.
  std::vector<double> grants(n, 0.0);
  grants[AllocTree::kRoot] = std::min(budget_w, hi_w_[AllocTree::kRoot]);
  for (std::size_t wave = 0; wave + 1 < depth_begin_.size(); ++wave) {
    const std::size_t first = depth_begin_[wave];
    const std::size_t count = depth_begin_[wave + 1] - first;
    parallel_tasks(count, threads_, [&](std::size_t t, std::size_t worker) {
      const NodeId id = by_depth_[first + t];
      split(tree, id, grants[id], grants.data(), work_[worker]);
    });
  }
  result.feasible = true;
  result.unallocated_w = budget_w - grants[AllocTree::kRoot];
  result.grants_w = std::move(grants);
  return result;
}

// Children lists, each in the order added (which is by id); the groups numbered in id order
// (ord_), each with memory of its own for the pieces it gathers and keeps; the groups in
// waves (order_groups()).
void TreeAllocator::take_shape(const AllocTree &tree) {
  const std::size_t n = tree.size();
  kid_begin_.assign(n + 1, 0);
  for (std::size_t i = 1; i < n; ++i) ++kid_begin_[tree.nodes_[i].parent + 1];
  for (std::size_t i = 0; i < n; ++i) kid_begin_[i + 1] += kid_begin_[i];
  kid_list_.resize(n > 0 ? n - 1 : 0);
  kid_fill_.assign(kid_begin_.begin(), kid_begin_.end() - 1);
  for (std::size_t i = 1; i < n; ++i)
    kid_list_[kid_fill_[tree.nodes_[i].parent]++] = static_cast<NodeId>(i);
  ord_.resize(n);
  groups_.clear();
  for (std::size_t i = 0; i < n; ++i)
    if (!tree.nodes_[i].leaf) {
      ord_[i] = static_cast<std::uint32_t>(groups_.size());
      groups_.push_back(static_cast<NodeId>(i));
    }
  leaves_ = n - groups_.size();
  if (gathered_.size() < groups_.size()) gathered_.resize(groups_.size());
  if (kept_.size() < groups_.size()) kept_.resize(groups_.size());
  order_groups(tree);
  shape_ = tree.shape();
}

// The groups (groups_, in id order) by height, lowest first (a group of leaves has height 1,
// a group 1 more than its highest child group), and by depth (the root 0), each in id order
// within its wave: by_height_[wave_begin_[h - 1], wave_begin_[h]) and
// by_depth_[depth_begin_[d], depth_begin_[d + 1]).
void TreeAllocator::order_groups(const AllocTree &tree) {
  const std::size_t g = groups_.size();
  height_.assign(g, 1);
  depth_.assign(g, 0);
  for (std::size_t k = g; k-- > 0;) {  // children (larger ids) first
    const NodeId id = groups_[k];
    if (id == AllocTree::kRoot) continue;
    std::uint32_t &ph = height_[ord_[tree.nodes_[id].parent]];
    ph = std::max(ph, height_[k] + 1);
  }
  for (std::size_t k = 0; k < g; ++k) {  // parents (smaller ids) first
    const NodeId id = groups_[k];
    if (id != AllocTree::kRoot) depth_[k] = depth_[ord_[tree.nodes_[id].parent]] + 1;
  }
  const auto by = [&](const std::vector<std::uint32_t> &key, std::vector<NodeId> &out,
                      std::vector<std::size_t> &begin, std::uint32_t base) {
    std::uint32_t top = 0;
    for (std::uint32_t v : key) top = std::max(top, v);
    begin.assign(g > 0 ? top - base + 2 : 1, 0);
    for (std::uint32_t v : key) ++begin[v - base + 1];
    for (std::size_t i = 1; i < begin.size(); ++i) begin[i] += begin[i - 1];
    out.resize(g);
    fill_.assign(begin.begin(), begin.end());
    for (std::size_t k = 0; k < g; ++k) out[fill_[key[k] - base]++] = groups_[k];
  };
  by(height_, by_height_, wave_begin_, 1);
  by(depth_, by_depth_, depth_begin_, 0);
}

AllocResult allocate_tree(const AllocTree &tree, double budget_w) {
  TreeAllocator allocator;
  return allocator.allocate(tree, budget_w);
}

// ---------------------------------------------------------------- flat

AllocResult allocate(double budget_w, const std::vector<AllocChild> &children) {
  AllocTree tree(0.0, std::numeric_limits<double>::infinity(), "the children");
  for (std::size_t i = 0; i < children.size(); ++i)
    tree.add_leaf(AllocTree::kRoot, children[i].min_w, children[i].max_w, children[i].curve,
                  "child " + std::to_string(i));
  AllocResult result = allocate_tree(tree, budget_w);
  if (result.failed_index != kNoIndex) result.failed_index -= 1;  // node id -> child index
  if (result.feasible) result.grants_w.erase(result.grants_w.begin());
  return result;
}

}  // namespace powergrad
