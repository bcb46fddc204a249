// cadre/map_calls.hpp — MapOptions, and the map_async / map_sync / map spellings that DirectView and
// LoadBalancedView share.
#pragma once

#include <cadre/detail/base/ranges.hpp>
#include <cadre/async_map_result.hpp>
#include <cadre/detail/wire/map_call.hpp>

#include <cstddef>
#include <utility>

namespace cadre {

/// How a map is cut into tasks, and in which order its results are iterated.
struct MapOptions {
  /// Items per task. 0: about 16 tasks per engine for a LoadBalancedView, one task per engine (its
  /// whole contiguous share) for a DirectView.
  std::size_t chunksize = 0;
  bool ordered = true;  ///< false: iterate results in completion order
};

namespace detail {
/// What map takes as a sequence: a range whose size is known up front (it is cut into chunks).
template <class R>
concept map_sequence = detail::input_range<const R> && detail::sized_range<const R>;
}  // namespace detail

/// The map calls of a view `View`, which provides `map_tasks(f, const MapOptions&, const Ranges&...)`
/// (returning an AsyncMapResult) and a `block` member. f is mapped over the sequences, zipped when
/// there are several, and the results come back in input order unless `.ordered = false`.
///
/// A trailing MapOptions may be written as a braced list, as in
/// ```cpp
/// auto amr = lview.map_async(pow10, xs, {.chunksize = 64, .ordered = false});
/// std::vector<long> ys = dview.map_sync(pow10, xs, {.chunksize = 8});
/// ```
/// A braced list cannot be deduced through a parameter pack, so one, two and three sequences each
/// have an overload that takes options; more sequences map with the default options.
template <class View>
class MapCalls {
 public:
  /// Maps f over the sequences (zipped when several) and returns an AsyncMapResult at once; the
  /// overloads with a MapOptions take one, two or three sequences. argument_error when the
  /// sequences' lengths differ.
  template <class F, detail::map_sequence Range, detail::map_sequence... Ranges>
  auto map_async(F&& f, const Range& xs, const Ranges&... more) const {
    return self().map_tasks(f, MapOptions{}, xs, more...);
  }
  /// map_async of one sequence with options: `view.map_async(f, xs, {.chunksize = 8})`.
  template <class F, detail::map_sequence R1>
  auto map_async(F&& f, const R1& xs, const MapOptions& opts) const {
    return self().map_tasks(f, opts, xs);
  }
  /// map_async of f(x, y) over two sequences of equal length, with options.
  template <class F, detail::map_sequence R1, detail::map_sequence R2>
  auto map_async(F&& f, const R1& xs, const R2& ys, const MapOptions& opts) const {
    return self().map_tasks(f, opts, xs, ys);
  }
  /// map_async of f(x, y, z) over three sequences of equal length, with options.
  template <class F, detail::map_sequence R1, detail::map_sequence R2, detail::map_sequence R3>
  auto map_async(F&& f, const R1& xs, const R2& ys, const R3& zs, const MapOptions& opts) const {
    return self().map_tasks(f, opts, xs, ys, zs);
  }

  /// map_async, waiting for the results: a std::vector of f's results (errors rethrown).
  template <class F, detail::map_sequence Range, detail::map_sequence... Ranges>
  auto map_sync(F&& f, const Range& xs, const Ranges&... more) const {
    return self().map_tasks(f, MapOptions{}, xs, more...).get();
  }
  /// map_sync of one sequence with options: `view.map_sync(f, xs, {.chunksize = 8})`.
  template <class F, detail::map_sequence R1>
  auto map_sync(F&& f, const R1& xs, const MapOptions& opts) const {
    return self().map_tasks(f, opts, xs).get();
  }
  /// map_sync of f(x, y) over two sequences of equal length, with options.
  template <class F, detail::map_sequence R1, detail::map_sequence R2>
  auto map_sync(F&& f, const R1& xs, const R2& ys, const MapOptions& opts) const {
    return self().map_tasks(f, opts, xs, ys).get();
  }
  /// map_sync of f(x, y, z) over three sequences of equal length, with options.
  template <class F, detail::map_sequence R1, detail::map_sequence R2, detail::map_sequence R3>
  auto map_sync(F&& f, const R1& xs, const R2& ys, const R3& zs, const MapOptions& opts) const {
    return self().map_tasks(f, opts, xs, ys, zs).get();
  }

  /// map_async, or map_sync's waiting when the view's `block` is set (the result is then ready).
  template <class F, detail::map_sequence Range, detail::map_sequence... Ranges>
  auto map(F&& f, const Range& xs, const Ranges&... more) const {
    return wait_if_blocking(self().map_tasks(f, MapOptions{}, xs, more...));
  }
  /// map of one sequence with options: `view.map(f, xs, {.chunksize = 8})`.
  template <class F, detail::map_sequence R1>
  auto map(F&& f, const R1& xs, const MapOptions& opts) const {
    return wait_if_blocking(self().map_tasks(f, opts, xs));
  }
  /// map of f(x, y) over two sequences of equal length, with options.
  template <class F, detail::map_sequence R1, detail::map_sequence R2>
  auto map(F&& f, const R1& xs, const R2& ys, const MapOptions& opts) const {
    return wait_if_blocking(self().map_tasks(f, opts, xs, ys));
  }
  /// map of f(x, y, z) over three sequences of equal length, with options.
  template <class F, detail::map_sequence R1, detail::map_sequence R2, detail::map_sequence R3>
  auto map(F&& f, const R1& xs, const R2& ys, const R3& zs, const MapOptions& opts) const {
    return wait_if_blocking(self().map_tasks(f, opts, xs, ys, zs));
  }

 private:
  const View& self() const noexcept { return static_cast<const View&>(*this); }

  template <class Result>
  Result wait_if_blocking(Result r) const {
    if (self().block) r.get();
    return r;
  }
};

}  // namespace cadre
