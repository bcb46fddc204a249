// cadre/direct_view.hpp — DirectView: the multiplexer; does the same thing on all of its engines.
#pragma once

#include <cadre/detail/base/ranges.hpp>
#include <cadre/async_map_result.hpp>
#include <cadre/map_calls.hpp>
#include <cadre/detail/client/data_plane.hpp>
#include <cadre/shared_vector.hpp>
#include <cadre/view.hpp>


#include <ostream>

namespace cadre {

/// How DirectView::scatter splits its data. At namespace scope, not nested in DirectView: clang
/// rejects a nested struct's default member initializer in a default argument of the enclosing class.
struct ScatterOptions {
  bool flatten = false;  ///< an engine whose chunk has one element gets the element, not a one-element vector
};

/// Several engines of a cluster, as `rc[cadre::all]`, `rc[cadre::slice{0, cadre::end, 2}]` or
/// `rc[std::vector<int>{3, 1}]`. Every call runs on each engine; results come back as a std::vector
/// with one element per engine, in the order of targets().
///
/// ```cpp
/// cadre::DirectView all = rc[cadre::all];
/// std::vector<pid_t> pids = all.apply_sync(::getpid);
/// all["a"] = 5;
/// std::vector<int> a = all.pull<int>("a");   // {5, 5, 5, 5}
/// ```
class DirectView : public BasicView<false>, public MapCalls<DirectView> {
 public:
  /// A view of no cluster; assign one from a Client (`rc[cadre::all]`) before use.
  DirectView() = default;
  /// \cond internal
  // Client makes views; the ids are checked there.
  DirectView(std::shared_ptr<detail::ClientCore> core, std::vector<int> ids) : BasicView(detail::Targets(std::move(core), std::move(ids))) {}
  /// \endcond

  /// cadre::ScatterOptions, as `dview.scatter("id", ids, {.flatten = true})` spells it.
  using ScatterOptions = cadre::ScatterOptions;

  /// Splits `data` over the view's engines, contiguous chunks in target order (engine p of k gets
  /// n/k + (p < n%k) items): engine p holds std::vector<E> under name (E with flatten). Arrays of
  /// numbers are written straight into the engines' memory; an Eigen matrix is split into row blocks
  /// (vectors into segments); a SharedVector is not copied at all.
  ///
  /// ```cpp
  /// dview.scatter("a", std::views::iota(0, 16));           // 4 engines: engine 0 gets {0,1,2,3}, ...
  /// dview.scatter("id", rc.ids(), {.flatten = true});      // engine p: int p
  /// ```
  template <class Range>
  AsyncResult<void> scatter(std::string_view name, const Range& data, ScatterOptions opts = {}) const {
    static_assert(!detail::eigen_without_support<Range>,
                  "cadre: scattering an Eigen type needs #include <cadre/eigen.hpp>");
    std::vector<detail::Task> tasks;
    if constexpr (is_shared_vector_v<Range>) {
      tasks = detail::scatter_shared(t_, name, data);
    } else if constexpr (detail::eigen_dense<Range>) {
      tasks = detail::scatter_eigen(t_, name, data);
    } else if constexpr (detail::contiguous_range<const Range> && detail::sized_range<const Range> &&
                         is_raw_array_v<std::vector<detail::range_value_t<const Range>>>) {
      tasks = detail::scatter_raw(t_, name, std::ranges::data(data), std::size_t(std::ranges::size(data)), opts.flatten);
    } else {
      static_assert(detail::sized_range<const Range>, "cadre: scatter takes a sized range, an Eigen matrix or a SharedVector");
      tasks = detail::scatter_generic(t_, name, data, opts.flatten);
    }
    return blocking(make<void>(std::move(tasks), "scatter", detail::ErrorPolicy::first));
  }

  /// scatter of a braced list: `dview.scatter("a", {1, 2, 3, 4})`.
  template <class E>
  AsyncResult<void> scatter(std::string_view name, std::initializer_list<E> data, ScatterOptions opts = {}) const {
    return scatter(name, std::vector<E>(data), opts);
  }

  /// Reassembles what the engines hold under name, in target order: for an Eigen type M, the row
  /// blocks stacked into one M; otherwise a std::vector<E> of the engines' std::vector<E> chunks
  /// concatenated (engines holding a single E contribute it). Throws type_error or name_error.
  template <class T>
  auto gather(std::string_view name) const {
    auto tasks = t_.named(detail::RecordKind::pull, name);
    for (const auto& t : tasks) t_.core()->wait(*t);
    if constexpr (detail::eigen_dense<T>) {
      return detail::gather_eigen<T>(tasks, name);
    } else {
      std::vector<T> out;
      detail::gather_into(tasks, name, out);
      return out;
    }
  }

  /// gather into an existing vector, reusing its memory (no page faults on repeated gathers).
  template <class E>
  void gather(std::string_view name, std::vector<E>& out) const {
    auto tasks = t_.named(detail::RecordKind::pull, name);
    for (const auto& t : tasks) t_.core()->wait(*t);
    detail::gather_into(tasks, name, out);
  }

  // map_async, map_sync and map come from MapCalls: one task per engine on its contiguous share of the
  // items (with MapOptions::chunksize, that share cut into tasks of chunksize items).

 private:
  friend class MapCalls<DirectView>;

  template <class F, class Range, class... Ranges>
  AsyncMapResult<detail::map_result_t<F, Range, Ranges...>> map_tasks(const F& f, const MapOptions& opts, const Range& xs,
                                                                      const Ranges&... more) const {
    using R = detail::map_result_t<F, Range, Ranges...>;
    const std::size_t n = std::size_t(std::ranges::size(xs));
    if (((std::size_t(std::ranges::size(more)) != n) || ...))
      throw argument_error("map: the sequences have different lengths (the first has " + std::to_string(n) +
                           " elements): zip sequences of equal length");
    const auto& ids = t_.ids();
    auto& tr = t_.core()->transport();
    std::vector<detail::Task> tasks;
    std::vector<std::byte> buf;
    auto send = [&](int engine, detail::Chunk c) {
      buf.clear();
      detail::encode_map(buf, tr.engines_run_this_program(), tr, f, chunk_of(xs, c), chunk_of(more, c)...);
      tasks.push_back(t_.core()->submit(std::uint32_t(engine), detail::RecordKind::apply, 0, buf));
    };
    for (std::size_t p = 0; p < ids.size(); ++p) {
      const detail::Chunk share = detail::partition(n, ids.size(), p);
      if (opts.chunksize == 0) {
        send(ids[p], share);
        continue;
      }
      for (std::size_t at = 0; at < share.count; at += opts.chunksize)
        send(ids[p], {share.begin + at, std::min(opts.chunksize, share.count - at)});
    }
    return AsyncMapResult<R>(t_.core(), std::move(tasks), opts.ordered);
  }

  template <class Range>
  static auto chunk_of(const Range& r, detail::Chunk c) {
    auto b = std::ranges::begin(r);
    std::ranges::advance(b, detail::range_difference_t<const Range>(c.begin));
    return detail::take_n(b, c.count);
  }
};

/// "<DirectView [0, 1, 2]>", as IPython.parallel prints it (fmt: <cadre/fmt.hpp>).
inline std::string to_string(const DirectView& v) { return "<DirectView [" + detail::join_ids(v.targets()) + "]>"; }

/// Prints to_string(v).
inline std::ostream& operator<<(std::ostream& os, const DirectView& v) { return os << to_string(v); }

}  // namespace cadre
