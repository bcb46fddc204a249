// cadre/detail/client/data_plane.hpp — scatter and gather: arrays written once, straight into engine-owned memory.
//
// Scatter of a contiguous array of numbers allocates each engine's block in the segment, writes the
// value's small headers, and copies the engine's chunk there directly: each byte is copied once, and
// no serialisation buffer exists. Gather reads each engine's value in place and copies it once into
// the result. A SharedVector is not copied at all: each engine gets a view of its slice.
#pragma once

#include <cadre/detail/base/ranges.hpp>
#include <cadre/codec.hpp>
#include <cadre/detail/client/client_core.hpp>
#include <cadre/detail/client/partition.hpp>
#include <cadre/detail/client/requests.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/shared_vector.hpp>

#include <limits>
#include <span>
#include <string>
#include <vector>

namespace cadre::detail {

/// An Eigen::Matrix/Array of numbers (their traits come with <cadre/eigen.hpp>).
template <class T>
concept eigen_dense = codec_impl::eigen_raw<T>;

/// An Eigen type in a program that did not include <cadre/eigen.hpp>.
template <class T>
concept eigen_without_support = codec_impl::eigen_like<T> && !requires { codec_impl::raw_traits<typename T::PlainObject>::is_eigen; };

/// One engine's part of a scatter whose memory is ready to be filled.
struct PendingPush {
  std::uint32_t engine;
  OutBlock block;                 // block.handle == 0: inline, in `inline_record`
  std::vector<std::byte> inline_record;
  std::byte* payload = nullptr;   // where the value's payload goes
};

/// Prepares a push of a typed value (type hash/name, payload_len bytes) to engine e: a record with the
/// value inline when it is small, else a block. The caller writes the payload, then send_all().
inline PendingPush prepare_push(Transport& t, std::uint32_t e, std::string_view name, std::uint64_t hash, std::string_view type,
                                std::size_t payload_len) {
  PendingPush p;
  p.engine = e;
  const std::size_t total = envelope_payload_offset(type.size()) + payload_len;
  Writer w(p.inline_record);
  w.str(name);
  const std::size_t name_bytes = p.inline_record.size();
  std::byte* env;
  if ((name_bytes + 15) / 16 * 16 + total <= kInlineBytes) {
    w.align(16);
    const std::size_t at = p.inline_record.size();
    p.inline_record.resize(at + total);
    env = p.inline_record.data() + at;
  } else {
    p.block = t.allocate(e, total);
    env = p.block.bytes.data();
  }
  p.payload = env + write_envelope_header(env, hash, type, payload_len);
  return p;
}

/// Sends prepared pushes; returns their tasks.
inline std::vector<Task> send_all(ClientCore& core, std::vector<PendingPush>& ps) {
  std::vector<Task> tasks;
  tasks.reserve(ps.size());
  for (auto& p : ps) {
    if (p.block.handle) {
      const auto head = std::span<const std::byte>(p.inline_record);
      tasks.push_back(core.submit(p.engine, RecordKind::push, 0, head, &p.block));
      p.block.handle = 0;
    } else {
      tasks.push_back(core.submit(p.engine, RecordKind::push, 0, p.inline_record));
    }
  }
  return tasks;
}

/// Gives back the blocks of pushes never sent (an allocation failed part way).
inline void discard_all(Transport& t, std::vector<PendingPush>& ps) noexcept {
  for (auto& p : ps)
    if (p.block.handle) t.discard(p.block);
  ps.clear();
}

/// Scatter of n contiguous numbers: engine p of the view gets chunk p, as std::vector<E> (or E with flatten).
template <class E>
std::vector<Task> scatter_raw(const Targets& view, std::string_view name, const E* data, std::size_t n, bool flatten) {
  check_name(name);
  ClientCore& core = *view.core();
  const auto& ids = view.ids();
  std::vector<PendingPush> ps;
  ps.reserve(ids.size());
  try {
    for (std::size_t p = 0; p < ids.size(); ++p) {
      const Chunk c = partition(n, ids.size(), p);
      if (flatten && c.count == 1) {
        ps.push_back(prepare_push(core.transport(), std::uint32_t(ids[p]), name, type_hash<E>(), type_name<E>(), sizeof(E)));
        std::memcpy(ps.back().payload, data + c.begin, sizeof(E));
        continue;
      }
      using V = std::vector<E>;
      ps.push_back(prepare_push(core.transport(), std::uint32_t(ids[p]), name, type_hash<V>(), type_name<V>(), kRawHeader + c.count * sizeof(E)));
      write_raw_header(ps.back().payload, c.count, 0);
    }
  } catch (...) {
    discard_all(core.transport(), ps);
    throw;
  }
  for (std::size_t p = 0; p < ids.size(); ++p) {
    const Chunk c = partition(n, ids.size(), p);
    if (!(flatten && c.count == 1) && c.count) copy_bytes(ps[p].payload + kRawHeader, data + c.begin, c.count * sizeof(E));
  }
  return send_all(core, ps);
}

/// Scatter of an Eigen matrix by row blocks (vectors: by segments), each engine's block of type M.
template <class M>
std::vector<Task> scatter_eigen(const Targets& view, std::string_view name, const M& m) {
  static_assert(M::RowsAtCompileTime == codec_impl::kDynamic || M::IsVectorAtCompileTime,
                "cadre: scatter splits a matrix into row blocks, so its row count must be dynamic");
  using S = typename M::Scalar;
  check_name(name);
  ClientCore& core = *view.core();
  const auto& ids = view.ids();
  constexpr bool row_vector = M::RowsAtCompileTime == 1;
  const std::size_t n = row_vector ? std::size_t(m.cols()) : std::size_t(m.rows());
  const std::size_t cols = row_vector ? 1 : std::size_t(m.cols());
  std::vector<PendingPush> ps;
  try {
    for (std::size_t p = 0; p < ids.size(); ++p) {
      const Chunk c = partition(n, ids.size(), p);
      ps.push_back(prepare_push(core.transport(), std::uint32_t(ids[p]), name, type_hash<M>(), type_name<M>(), kRawHeader + c.count * cols * sizeof(S)));
      write_raw_header(ps.back().payload, row_vector ? 1 : c.count, row_vector ? c.count : cols);
    }
  } catch (...) {
    discard_all(core.transport(), ps);
    throw;
  }
  for (std::size_t p = 0; p < ids.size(); ++p) {
    const Chunk c = partition(n, ids.size(), p);
    S* dst = reinterpret_cast<S*>(ps[p].payload + kRawHeader);
    if (M::IsVectorAtCompileTime || M::IsRowMajor) {
      copy_bytes(dst, m.data() + c.begin * cols, c.count * cols * sizeof(S));
    } else if (c.count != 0) {
      // Column-major: a row block is one strided run per column, copied straight into place.
      const std::size_t rows = std::size_t(m.rows());
      copy_runs(reinterpret_cast<std::byte*>(dst), c.count * sizeof(S), reinterpret_cast<const std::byte*>(m.data() + c.begin), rows * sizeof(S),
                c.count * sizeof(S), cols);
    }
  }
  return send_all(core, ps);
}

/// Scatter of a SharedVector: each engine gets a view of its slice (one reference on the block each).
template <class E>
std::vector<Task> scatter_shared(const Targets& view, std::string_view name, const SharedVector<E>& v) {
  check_name(name);
  ClientCore& core = *view.core();
  if (!v.block()) return scatter_raw<E>(view, name, nullptr, 0, false);  // an empty handle: empty chunks
  Transport& t = core.transport();
  const SharedRegion& region = *v.region();
  if (region.memory_identity() != t.memory_identity())
    throw argument_error("scatter of '" + std::string(name) + "': this SharedVector belongs to another " + region.describe() +
                         "; make it with this cluster's Client::make_shared_vector");
  const auto& ids = view.ids();
  std::vector<Task> tasks;
  std::vector<std::byte> buf;
  using V = std::vector<E>;
  for (std::size_t p = 0; p < ids.size(); ++p) {
    const Chunk c = partition(v.size(), ids.size(), p);
    buf.clear();
    Writer w(buf);
    w.str(name);
    w.put(std::uint64_t(v.block()));
    w.put(std::uint64_t(c.begin * sizeof(E)));
    w.put(std::uint64_t(c.count));
    w.put(std::uint64_t(sizeof(E)));
    put_type_head(buf, type_hash<V>(), type_name<V>());
    t.retain_shared(region);  // the engine's; it releases it with the value
    Task task;
    try {
      task = core.submit(std::uint32_t(ids[p]), RecordKind::scatter_view, 0, buf);
    } catch (...) {
      t.release_shared(region);
      throw;
    }
    if (task->is_done() && task->failure) t.release_shared(region);  // never reached the engine
    tasks.push_back(std::move(task));
  }
  return tasks;
}

/// Scatter of any other sized range: engine p gets std::vector<E> of its chunk (E with flatten).
template <class Range>
std::vector<Task> scatter_generic(const Targets& view, std::string_view name, const Range& r, bool flatten) {
  using E = range_value_t<Range>;
  const auto& ids = view.ids();
  const std::size_t n = std::size_t(std::ranges::size(r));
  auto it = std::ranges::begin(r);
  std::vector<Task> tasks;
  for (std::size_t p = 0; p < ids.size(); ++p) {
    const Chunk c = partition(n, ids.size(), p);
    std::vector<E> chunk;
    chunk.reserve(c.count);
    for (std::size_t i = 0; i < c.count; ++i, ++it) chunk.push_back(*it);
    Targets one(view.core(), {ids[p]});
    auto t = flatten && c.count == 1 ? one.push(name, chunk.front()) : one.push(name, chunk);
    tasks.push_back(std::move(t.front()));
  }
  return tasks;
}

/// Appends what engines hold under a name to out: std::vector<E> chunks are concatenated, E scalars collected.
template <class E>
void gather_into(std::span<const Task> tasks, std::string_view name, std::vector<E>& out) {
  throw_errors(tasks, ErrorPolicy::first);
  using V = std::vector<E>;
  std::vector<TypedView> views;
  std::vector<std::uint64_t> counts;  // validated once: the engine's block is read, never re-read
  std::size_t total = 0;
  for (const auto& t : tasks) {
    views.push_back(typed_of(*t));
    counts.push_back(1);
    const TypedView& v = views.back();
    if (v.type_hash == type_hash<V>()) {
      if constexpr (is_raw_array_v<V>) {
        std::uint64_t raw[2];
        if (v.payload.size() < sizeof raw) throw decode_error("gather: truncated array from engine " + std::to_string(t->engine));
        std::memcpy(raw, v.payload.data(), sizeof raw);
        if (raw[0] > (v.payload.size() - sizeof raw) / sizeof(E)) throw decode_error("gather: corrupt array from engine " + std::to_string(t->engine));
        counts.back() = raw[0];
        total += raw[0];
      }
    } else if (v.type_hash == type_hash<E>()) {
      ++total;
    } else {
      throw type_error(std::string(v.type), type_name<V>() + " or " + type_name<E>(),
                       "gather of '" + std::string(name) + "' from engine " + std::to_string(t->engine));
    }
  }
  if constexpr (is_raw_array_v<V>) {
    if (out.capacity() >= total) {
      // A reused vector (its pages touched): copy each chunk into place, large ones over oneTBB's
      // threads like scatter does (bench/data_bench.cpp: one thread does not saturate the memory).
      out.resize(total);
      std::size_t at = 0;
      for (std::size_t i = 0; i < views.size(); ++i) {
        const TypedView& v = views[i];
        if (v.type_hash == type_hash<E>()) {
          out[at++] = decode<E>(v.payload);
        } else {
          copy_bytes(out.data() + at, v.payload.data() + kRawHeader, counts[i] * sizeof(E));
          at += counts[i];
        }
      }
      return;
    }
  }
  out.clear();
  out.reserve(total);  // fresh memory: one pass that faults pages in and copies, no zero-fill first
  for (std::size_t i = 0; i < views.size(); ++i) {
    const TypedView& v = views[i];
    if (v.type_hash == type_hash<E>()) {
      out.push_back(decode<E>(v.payload));
    } else if constexpr (is_raw_array_v<V>) {
      const E* p = reinterpret_cast<const E*>(v.payload.data() + kRawHeader);
      out.insert(out.end(), p, p + counts[i]);  // into reserved capacity: one copy, no zero-fill
    } else {
      auto part = decode<V>(v.payload);
      out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
    }
  }
}

/// Stacks engines' row blocks (segments, for vectors) of type M back into one M.
template <class M>
M gather_eigen(std::span<const Task> tasks, std::string_view name) {
  using S = typename M::Scalar;
  throw_errors(tasks, ErrorPolicy::first);
  constexpr bool row_vector = M::RowsAtCompileTime == 1;
  using Index = std::ptrdiff_t;  // Eigen::Index
  std::vector<decltype(cadre::view<M>(std::span<const std::byte>{}))> blocks;
  Index total = 0, cols = -1, empty_cols = -1;
  for (const auto& t : tasks) {
    const TypedView v = typed_of(*t);
    if (v.type_hash != type_hash<M>())
      throw type_error(std::string(v.type), type_name<M>(), "gather of '" + std::string(name) + "' from engine " + std::to_string(t->engine));
    blocks.push_back(cadre::view<M>(v.payload));
    const auto& b = blocks.back();
    const Index n = row_vector ? b.cols() : b.rows(), bc = row_vector ? 1 : b.cols();
    if (n == 0) {  // adds no rows: its width matters only when every block is empty
      if (empty_cols < 0) empty_cols = bc;
      continue;
    }
    // Rows with no columns (an n x 0 block) count too, so they must match the width like any other.
    if (cols >= 0 && bc != cols)
      throw type_error(std::to_string(bc) + " columns", std::to_string(cols) + " columns",
                       "gather of '" + std::string(name) + "': row blocks of different widths");
    cols = bc;
    if (n > std::numeric_limits<Index>::max() - total)
      throw decode_error("gather of '" + std::string(name) + "': more rows than an Eigen::Index holds");
    total += n;
  }
  if (cols < 0) cols = empty_cols < 0 ? 0 : empty_cols;
  M out;
  if constexpr (row_vector) out.resize(1, total);
  else if constexpr (M::IsVectorAtCompileTime) out.resize(total, 1);
  else out.resize(total, cols);
  advise_huge_pages(out.data(), std::size_t(out.size()) * sizeof(S));
  Index at = 0;
  for (const auto& b : blocks) {
    const Index n = row_vector ? b.cols() : b.rows();
    if (n == 0) continue;
    if constexpr (M::IsVectorAtCompileTime || M::IsRowMajor) {
      copy_bytes(out.data() + at * cols, b.data(), std::size_t(b.size()) * sizeof(S));
    } else {
      // Column-major: the block's rows land as one strided run per column.
      copy_runs(reinterpret_cast<std::byte*>(out.data() + at), std::size_t(total) * sizeof(S), reinterpret_cast<const std::byte*>(b.data()),
                std::size_t(n) * sizeof(S), std::size_t(n) * sizeof(S), std::size_t(cols));
    }
    at += n;
  }
  (void)sizeof(S);
  return out;
}

}  // namespace cadre::detail
