// cadre/load_balanced_view.hpp — LoadBalancedView: run tasks on whichever engine is free.
//
// Tasks go to a queue in the shared segment that every allowed engine takes work from when it is
// free: no scheduler process sits in the middle, and a slow task on one engine never holds back
// tasks that others can run.
#pragma once

#include <cadre/detail/base/ranges.hpp>
#include <cadre/async_map_result.hpp>
#include <cadre/async_result.hpp>
#include <cadre/map_calls.hpp>
#include <cadre/detail/client/partition.hpp>
#include <cadre/detail/client/requests.hpp>


#include <chrono>
#include <memory>
#include <ostream>
#include <vector>

namespace cadre {

/// A view that runs each task on whichever of its engines is free.
///
/// ```cpp
/// cadre::LoadBalancedView lview = rc.load_balanced_view();
/// int x = lview.apply_sync(twice, 21);
/// auto amr = lview.map_async(pow10, xs, {.chunksize = 64, .ordered = false});
/// for (long y : amr) use(y);          // in completion order
/// ```
class LoadBalancedView : public MapCalls<LoadBalancedView> {
 public:
  /// Re-run a task whose engine died, up to this many more times.
  int retries = 0;
  /// A task not started within this time fails with timeout_error (0: no limit).
  std::chrono::milliseconds timeout{0};
  /// When true, apply and map wait for their result and rethrow errors before returning.
  bool block = false;

  /// A view of no cluster; assign one from Client::load_balanced_view() before use.
  LoadBalancedView() = default;
  /// \cond internal
  // Client makes views; the targets are checked there.
  LoadBalancedView(std::shared_ptr<detail::ClientCore> core, std::vector<int> targets)
      : core_(std::move(core)), targets_(std::move(targets)) {
    std::uint64_t mask = 0;
    for (int e : targets_) mask |= e < 64 ? (1ull << e) : ~0ull;
    queue_ = core_->transport().balanced_queue(mask);
  }
  /// \endcond

  /// Calls f(args...) on the first free engine.
  template <class F, class... Args>
  AsyncResult<detail::call_result_t<F, Args...>> apply_async(F&& f, Args&&... args) const {
    using R = detail::call_result_t<F, Args...>;
    const auto record = detail::apply_record(core_->transport(), std::forward<F>(f), std::forward<Args>(args)...);
    auto made = detail::ResultAccess::with_new_task<R>(core_, detail::kAnyEngine, detail::single<R>("result"));
    core_->submit_balanced(made.second, queue_, detail::RecordKind::apply, record, retries, timeout_ns(), after_);
    return std::move(made.first);
  }

  /// Calls f(args...) on the first free engine and waits for the result (its error rethrown).
  template <class F, class... Args>
  detail::call_result_t<F, Args...> apply_sync(F&& f, Args&&... args) const {
    return apply_async(std::forward<F>(f), std::forward<Args>(args)...).get();
  }

  /// apply_async, or apply_sync's waiting when `block` is set (the result is then ready).
  template <class F, class... Args>
  AsyncResult<detail::call_result_t<F, Args...>> apply(F&& f, Args&&... args) const {
    auto r = apply_async(std::forward<F>(f), std::forward<Args>(args)...);
    if (block) r.get();
    return r;
  }

  // map_async, map_sync and map come from MapCalls: tasks of MapOptions::chunksize items (by default
  // about 16 tasks per engine), each taken by the first free engine.

  /// A copy of this view whose tasks start only after these results succeeded (a failed one makes
  /// them fail with dependency_error, without running).
  template <class... Results>
  LoadBalancedView after(const Results&... results) const {
    LoadBalancedView v = *this;
    auto add = [&v](std::vector<detail::Task> tasks) { v.after_.insert(v.after_.end(), tasks.begin(), tasks.end()); };
    (add(detail::ResultAccess::tasks(results)), ...);
    return v;
  }

  /// Aborts this client's unfinished tasks of this view's engines' queue, as AsyncResult::abort does
  /// each: queued ones never run, running ones are interrupted. Returns how many it reached.
  std::size_t abort() const {
    return core_->abort_all([&](const detail::TaskState& t) { return t.balanced && t.queue == queue_; });
  }

  /// The engines this view may use.
  const std::vector<int>& targets() const noexcept { return targets_; }

 private:
  detail::Task submit(std::span<const std::byte> record) const {
    return core_->submit_balanced(queue_, detail::RecordKind::apply, record, retries, timeout_ns(), after_);
  }

  std::uint64_t timeout_ns() const { return std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count()); }

  friend class MapCalls<LoadBalancedView>;

  template <class F, class Range, class... Ranges>
  AsyncMapResult<detail::map_result_t<F, Range, Ranges...>> map_tasks(const F& f, const MapOptions& opts, const Range& xs,
                                                                      const Ranges&... more) const {
    using R = detail::map_result_t<F, Range, Ranges...>;
    const std::size_t n = std::size_t(std::ranges::size(xs));
    if (((std::size_t(std::ranges::size(more)) != n) || ...))
      throw argument_error("map: the sequences have different lengths (the first has " + std::to_string(n) +
                           " elements): zip sequences of equal length");
    const std::size_t per_task = opts.chunksize ? opts.chunksize : std::max<std::size_t>(1, (n + 16 * targets_.size() - 1) / (16 * targets_.size()));
    auto& t = core_->transport();
    std::vector<detail::Task> tasks;
    tasks.reserve((n + per_task - 1) / per_task);
    std::vector<std::byte> buf;
    auto it = std::ranges::begin(xs);
    auto its = std::make_tuple(std::ranges::begin(more)...);
    for (std::size_t at = 0; at < n; at += per_task) {
      const std::size_t count = std::min(per_task, n - at);
      buf.clear();
      std::apply([&](auto&... rest) {
        detail::encode_map(buf, t.engines_run_this_program(), t, f, detail::take_n(it, count), detail::take_n(rest, count)...);
      }, its);
      tasks.push_back(submit(buf));
    }
    return AsyncMapResult<R>(core_, std::move(tasks), opts.ordered);
  }

  std::shared_ptr<detail::ClientCore> core_;
  std::vector<int> targets_;
  std::uint32_t queue_ = 0;
  std::vector<detail::Task> after_;
};

/// "<LoadBalancedView [0, 1, 2]>", as IPython.parallel prints it (fmt: <cadre/fmt.hpp>).
inline std::string to_string(const LoadBalancedView& v) { return "<LoadBalancedView [" + detail::join_ids(v.targets()) + "]>"; }

/// Prints to_string(v).
inline std::ostream& operator<<(std::ostream& os, const LoadBalancedView& v) { return os << to_string(v); }

}  // namespace cadre
