// Power allocation by water-filling on concave gain curves, flat and over a tree.
//
// Every child first gets its floor (min_w); the rest of the budget goes to the highest
// marginal gains first. Watts on segments of equal slope are shared by a water level: each
// tied child gets the same amount, up to what its segment can take, so equal gradients get
// equal grants where bounds allow. Budget beyond what all children can take is left over
// (unallocated_w).
//
// Over a tree (cluster -> groups such as racks/PDUs -> nodes -> domains) each group's curve is
// the merge of its children's curves, cut to the group's own limit; the grant is then split
// top-down with the same rule. For separable concave gains under nested limits this greedy is
// exact (Federgruen & Groenevelt, Oper. Res. 1986): the total gain equals the optimum.
// Tied watts across groups are shared per leaf segment at that slope (a group holding three
// tied leaves gets three shares): exact per-leaf equality when the tied leaves can each take
// their share; when some fill up early, their siblings in the same group absorb the rest.
// Either way the total gain is optimal (ties have equal slopes).
//
// Guarantees, all tested:
// - the grants a parent hands out, summed in child order in double precision, never exceed
//   what the parent was given (the budget at the root), not even by rounding;
// - every grant lies within its node's [min_w, max_w] (and a group's within its effective
//   range, see AllocTree);
// - deterministic: the same input gives bit-identical output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "libgradient/gain_curve.hpp"

namespace powergrad {

inline constexpr std::size_t kNoIndex = std::numeric_limits<std::size_t>::max();

// Result shape shared by allocate(), allocate_tree() and the baselines.
struct AllocResult {
  bool feasible = false;
  // One grant per child (flat) or per tree node (indexed by NodeId). Empty when not
  // feasible: there is no partial answer a caller could mistake for a safe one.
  std::vector<double> grants_w;
  // Budget not handed out because every child is at its maximum (0 when feasible and the
  // budget is below what the children can take).
  double unallocated_w = 0.0;
  // Why not feasible, naming the child or node; empty when feasible.
  std::string error;
  // The child index (flat) or NodeId (tree) the error is about, kNoIndex if about the budget.
  std::size_t failed_index = kNoIndex;
};

// A child of a flat allocation. `curve` describes the gain of the watts above min_w; if it is
// narrower than max_w - min_w the rest gains nothing (slope 0), if wider it is cut.
struct AllocChild {
  double min_w = 0.0;
  double max_w = 0.0;
  GainCurve curve;
};

// Splits budget_w over the children. Not feasible when the budget is negative or not finite,
// a child's bounds are bad (negative, not finite, min above max) or its curve invalid, or the
// floors sum above the budget.
AllocResult allocate(double budget_w, const std::vector<AllocChild> &children);

using NodeId = std::uint32_t;
inline constexpr NodeId kNoNode = std::numeric_limits<NodeId>::max();

// A tree of power limits. Node 0 is the root (the cluster); every other node is added under an
// existing group, so a parent's id is always below its children's. Leaves carry gain curves
// (as AllocChild does); groups carry their own limits, e.g. a rack PDU's rating. A group's
// effective range is [max(own min, sum of children's mins), min(own max, sum of children's
// maxima)]; its max may be +infinity (no own limit), a leaf's may not.
class AllocTree {
 public:
  static constexpr NodeId kRoot = 0;

  explicit AllocTree(double root_min_w = 0.0,
                     double root_max_w = std::numeric_limits<double>::infinity(),
                     std::string root_name = "root");

  // Return the new node's id, or kNoNode if `parent` is not an existing group.
  NodeId add_group(NodeId parent, double min_w, double max_w, std::string name = {});
  NodeId add_leaf(NodeId parent, double min_w, double max_w, GainCurve curve,
                  std::string name = {});
  // Per-period updates; false if the node does not exist (or is not a leaf, for the curve).
  bool set_curve(NodeId leaf, GainCurve curve);
  // Swaps the leaf's curve with `curve` (which then holds the old one): lets a caller that
  // rebuilds curves every period reuse their memory.
  bool swap_curve(NodeId leaf, GainCurve &curve);
  bool set_limits(NodeId node, double min_w, double max_w);

  std::size_t size() const { return nodes_.size(); }
  bool contains(NodeId id) const { return id < nodes_.size(); }
  bool is_leaf(NodeId id) const { return nodes_[id].leaf; }
  NodeId parent(NodeId id) const { return nodes_[id].parent; }
  double min_w(NodeId id) const { return nodes_[id].min_w; }
  double max_w(NodeId id) const { return nodes_[id].max_w; }
  const GainCurve &curve(NodeId id) const { return curves_[id]; }
  const std::string &name(NodeId id) const { return names_[id]; }
  // The node's name, or "node #ID" when it has none: for messages.
  std::string describe(NodeId id) const;
  // Children in the order they were added.
  std::vector<NodeId> children(NodeId id) const;
  // Changes whenever a node is added (unique among all trees of the process; a copy keeps
  // its original's): TreeAllocator keeps what it derives from the tree's shape until then.
  std::uint64_t shape() const { return shape_; }

 private:
  friend class TreeAllocator;
  struct Node {
    NodeId parent = kNoNode;
    NodeId first_child = kNoNode;
    NodeId last_child = kNoNode;
    NodeId next_sibling = kNoNode;
    double min_w = 0.0;
    double max_w = 0.0;
    bool leaf = false;
  };
  NodeId add_node(NodeId parent, double min_w, double max_w, bool leaf, std::string name);

  static std::uint64_t next_shape();
  std::vector<Node> nodes_;
  std::uint64_t shape_ = next_shape();
  std::vector<GainCurve> curves_;  // empty curve for groups
  std::vector<std::string> names_;
};

// Inline: the cluster controller calls these for every node every period.
inline bool AllocTree::swap_curve(NodeId leaf, GainCurve &curve) {
  if (!contains(leaf) || !nodes_[leaf].leaf) return false;
  curves_[leaf].swap(curve);
  return true;
}

inline bool AllocTree::set_limits(NodeId node, double min_w, double max_w) {
  if (!contains(node)) return false;
  nodes_[node].min_w = min_w;
  nodes_[node].max_w = max_w;
  return true;
}

// Splits budget_w over the tree; grants_w[id] is node id's grant (the root's is what the
// tree takes of the budget, and unallocated_w = budget_w - that). Not feasible when the
// budget is bad or below the root's floor, any node's limits or curve are bad, or a group's
// effective range is empty (children's floors above its max, or its min above what its
// children can take); failed_index is then that node's id.
AllocResult allocate_tree(const AllocTree &tree, double budget_w);

// The same, keeping its working memory between calls: a controller that reallocates every
// period over a large tree should hold one of these.
//
// How: no curve is ever sorted. A group's curve is the multiset of its children's pieces;
// where its own limits cut it, the two cut points are found by weighted selection (the slope
// at which the cumulative width, steepest first, reaches a given amount: widths summed by
// slope bucket in one pass, then the one bucket that holds it sorted out) and only the
// pieces between them are kept. Top-down, only the root's water level needs a selection: a
// group splits at its parent's level clamped to its own cut levels. Work is linear in the
// number of pieces per tree level. Nothing is reordered: a group keeps its pieces in child
// order.
class TreeAllocator {
 public:
  AllocResult allocate(const AllocTree &tree, double budget_w);
  // Threads allocate() may use (parallel_tasks): the leaves are checked in chunks of at
  // least min_leaves_per_thread, and sibling groups (those of one height, bottom-up, and of
  // one depth, top-down) are built and split on up to `threads` threads, as are the chunks
  // of a large tree's root (root_chunks()). The result does not depend on it: each group's
  // work reads only its own subtree, and the root's chunks are fixed by the tree. Default 1.
  void set_threads(std::size_t threads, std::size_t min_leaves_per_thread = 4096);
  // From how many leaves on the root's children are split in chunks (root_chunks()): for
  // tests, which compare the two ways on small trees. At least 1.
  void set_root_chunk_leaves(std::size_t leaves) {
    root_chunk_leaves_ = std::max<std::size_t>(1, leaves);
  }

 private:
  // A linear piece of a curve. weight counts the leaf segments in it, so a water level
  // across groups shares tied watts per leaf segment, not per group.
  struct Piece {
    double slope;
    double width_w;
    double weight;
  };
  // Where cumulative width, steepest first, reaches a target: pieces steeper than `slope`
  // hold above_w (<= target), those at `slope` hold at_w more (above_w + at_w > target).
  // slope is -infinity when the target is at or beyond the total width.
  struct Level {
    double slope;
    double above_w;
    double at_w;
  };
  // A child's pieces relative to a level: watts steeper than it, watts at it, and how many
  // leaf segments those at it stand for.
  struct Share {
    double above_w;
    double at_w;
    double weight;
  };
  struct TieShare {
    std::uint32_t child;
    double cap_w;
    double weight;
  };
  struct Frame {
    std::size_t next;
    std::size_t end;
  };
  // One thread's working memory.
  struct Work {
    std::vector<double> bucket_w;               // select_level(): widths by slope bucket
    std::size_t hist_top = 0, hist_bottom = 0;  // the highest and lowest bucket in use
    std::vector<Piece> bucket;                  // select_level(): the pieces of one bucket
    std::vector<Piece> bucket2;                 // keep_window(): those of the other level's bucket
    std::vector<Frame> frames;
    std::vector<NodeId> stack;
    std::vector<double> kid_grants, kid_floors;
    std::vector<TieShare> ties;
  };
  struct Failure {
    std::size_t id = kNoIndex;
    std::string error;
  };

  // A leaf's pieces: f(slope, width) for each, in order, read from its curve.
  template <typename F>
  static void for_each_leaf_piece(const AllocTree &tree, NodeId id, F &&f);
  static double leaf_width(const AllocTree &tree, NodeId id);
  static void prefetch_leaves(const AllocTree &tree, const NodeId *kids, std::size_t i,
                              std::size_t end);
  void add_leaf_share(const AllocTree &tree, NodeId id, double level, Share &share);
  bool build_leaf(const AllocTree &tree, NodeId id, AllocResult &result);
  bool build_group(const AllocTree &tree, NodeId id, AllocResult &result, Work &w);
  void keep_window(NodeId id, double start_w, double end_w, Work &w);
  // Calls f(piece) for the pieces of id's children's curves, in child order, and
  // leaf_done(leaf, pieces) after each leaf's.
  template <typename F, typename LeafDone>
  void for_each_child_piece(const AllocTree &tree, NodeId id, F &&f, LeafDone &&leaf_done, Work &w);
  // The same for the children kid_list_[begin, end) (of one node).
  template <typename F, typename LeafDone>
  void for_each_piece_of(const AllocTree &tree, std::size_t begin, std::size_t end, F &&f,
                         LeafDone &&leaf_done, Work &w);
  // The level at which the pieces each(f) visits reach target_w (see Level).
  template <typename Each>
  Level select_level(Each &&each, double target_w, Work &w);
  // select_level() in parts: the histogram of widths by slope bucket, filled piece by piece;
  // the level for a target given the histogram of the pieces each(f) visits; and clearing it.
  static void start_histogram(Work &w);
  static void add_to_histogram(Work &w, const Piece &p);
  template <typename Each>
  Level find_level(Each &&each, double target_w, Work &w);
  static void clear_histogram(Work &w);
  static std::size_t level_bucket(const Work &w, double target_w, double &above);
  static Level partition_level(Piece *a, std::size_t n, double target_w);
  Share share_at(const AllocTree &tree, NodeId id, double level, Work &w);
  // The root's split in chunks of its children (root_chunks()), on up to threads_ threads.
  std::size_t root_chunks(std::size_t kids) const;
  Level root_level(const AllocTree &tree, double target_w, std::size_t chunks, Work &w);
  void split(const AllocTree &tree, NodeId id, double grant_w, double *grants, Work &w);
  // What allocate() derives from the tree's shape alone (children lists, the groups and
  // their order): redone only when the shape changes.
  void take_shape(const AllocTree &tree);
  void order_groups(const AllocTree &tree);
  std::uint64_t shape_ = 0;  // of the tree take_shape() last saw (0: none)

  // Per node: effective range, sum of the children's floors, the width of the curve it
  // offers its parent (a group's own pieces kept_, or its children's when pass_through; a
  // leaf's curve cut to its range; a leaf's width only when its parent is pass_through),
  // the slopes where its own floor and cap cut its children's curves, its split level, and
  // whether it was built (state_).
  std::vector<double> lo_w_, hi_w_, floor_sum_w_, curve_w_;
  std::vector<unsigned char> pass_through_;
  std::vector<double> floor_cut_, cap_cut_, level_;
  static constexpr unsigned char kBuilt = 0, kFailed = 1, kBlocked = 2;
  std::vector<unsigned char> state_;
  // The groups in id order (groups_), each group's number there (ord_), and per group the
  // pieces it gathered from its children (gathered_) and those it keeps as its own curve
  // (kept_): memory of each group's own, so that groups built on different threads never
  // share it. A leaf's pieces are gathered_[leaf_src_][leaf_begin_, leaf_end_) if a group
  // gathered them (else leaf_begin_ is kNoIndex).
  std::vector<NodeId> groups_;
  std::vector<std::uint32_t> ord_;
  std::vector<std::vector<Piece>> gathered_, kept_;
  std::vector<std::uint32_t> leaf_src_;
  std::vector<std::size_t> leaf_begin_, leaf_end_;
  // order_groups(): the groups by height and by depth, in waves.
  std::vector<std::uint32_t> height_, depth_;
  std::vector<NodeId> by_height_, by_depth_;
  std::vector<std::size_t> wave_begin_, depth_begin_, fill_;
  // Each node's children: kid_list_[kid_begin_[id], kid_begin_[id + 1]).
  std::vector<std::size_t> kid_begin_, kid_fill_;
  std::vector<NodeId> kid_list_;
  std::vector<Work> work_;  // one per thread
  // root_level(): per chunk of the root's children, the histogram of its pieces and the
  // pieces of the level's bucket; split(): each child's share at the level.
  std::vector<Work> chunk_work_;
  std::vector<Share> kid_shares_;
  std::vector<Failure> failed_;  // allocate(): per leaf chunk, then per group
  std::size_t threads_ = 1;
  std::size_t min_leaves_ = 4096;
  std::size_t leaves_ = 0;  // in the tree allocate() works on
  // From root_chunk_leaves_ leaves on, the root's children are split in up to kRootChunks
  // chunks: a tree that large has enough pieces for the threads to pay.
  static constexpr std::size_t kRootChunks = 16;
  std::size_t root_chunk_leaves_ = 16384;
};

// Lowers grants (never below their floors, last ones first) until their sum, taken in index
// order in double precision, is at most budget_w. Returns false only if the floors alone
// exceed the budget. Shared by the allocators and the baselines.
bool fit_to_budget(double *grants_w, const double *floors_w, std::size_t n, double budget_w);

}  // namespace powergrad
