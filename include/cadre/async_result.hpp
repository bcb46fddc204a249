// cadre/async_result.hpp — AsyncResult<T>: a future over one or many engine tasks, with progress.
#pragma once

#include <cadre/detail/client/client_core.hpp>
#include <cadre/detail/client/progress.hpp>
#include <cadre/detail/client/task_result.hpp>
#include <cadre/errors.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <atomic>
#include <optional>
#include <span>
#include <stdexcept>
#include <utility>
#include <string>
#include <vector>

namespace cadre {

namespace detail {
struct ResultAccess;
}  // namespace detail

/// A result that arrives later: from one engine (`AsyncResult<int>`), many (`AsyncResult<std::vector<int>>`),
/// or none at all (`AsyncResult<void>` for push and execute). A cheap, copyable handle: copies share
/// the tasks, and get() may be called any number of times.
///
/// ```cpp
/// cadre::AsyncResult<std::vector<int>> ar = odd.apply_async(twice, 1);
/// ar.wait_interactive();            // progress on stderr
/// std::vector<int> v = ar.get();    // {2, 2}, or the engines' errors rethrown
/// ```
template <class T>
class AsyncResult {
 public:
  /// What get() returns: a single value, a std::vector with one element per task, or void.
  using value_type = T;
  /// \cond internal
  using Combine = std::function<T(std::span<const detail::Task>)>;
  /// \endcond

  /// An empty result: every member but assignment throws cadre::error until one is assigned.
  AsyncResult() = default;
  /// \cond internal
  // The views make results; a user never needs to.
  AsyncResult(std::shared_ptr<detail::ClientCore> core, std::vector<detail::Task> tasks, Combine combine)
      : core_(std::move(core)), s_(std::make_shared<State>(std::move(tasks), std::move(combine))) {}
  /// \endcond

  /// A result computed on the client from this one's value when it is ready: `ar.then([](int x) { return x + 1; })`.
  /// f runs when the new result is first waited on (get/wait), on the waiting thread.
  template <class F>
  auto then(F f) const {
    using U = std::conditional_t<std::is_void_v<T>, std::invoke_result<F>, std::invoke_result<F, T>>;
    using R = std::decay_t<typename U::type>;
    AsyncResult<T> base = *this;
    return AsyncResult<R>(core_, tasks(), [base, f](std::span<const detail::Task>) -> R {
      if constexpr (std::is_void_v<T>) {
        base.get();
        return f();
      } else {
        return f(base.get());
      }
    });
  }

  /// True when every task has finished (successfully or not). Does not wait, but takes in what has
  /// arrived, so `while (!ar.ready()) sleep_for(10ms);` ends when the tasks do.
  [[nodiscard]] bool ready() const {
    take_in();
    return all_done();
  }

  /// Waits for every task; never throws for the tasks' own errors.
  void wait() const {
    for (const auto& t : all_tasks()) core().wait(*t);
  }

  /// Waits at most `timeout`; true when ready.
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    const std::uint64_t deadline = detail::now_ns() + std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count());
    for (const auto& t : all_tasks())
      if (!core().wait(*t, deadline)) return false;
    return true;
  }

  /// True when ready and every task succeeded. Throws cadre::error if called before ready().
  bool successful() const {
    if (!ready()) throw error("AsyncResult::successful() called before the result is ready; call wait() first");
    for (const auto& t : all_tasks())
      if (detail::task_error(*t)) return false;
    return true;
  }

  /// The result; waits for it. Rethrows the engines' errors (remote_error, composite_error, ...).
  T get() const {
    wait();
    return value();
  }

  /// The result, waiting at most `timeout`; throws timeout_error when it is not ready by then.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) const {
    if (!wait_for(timeout))
      throw timeout_error("result not ready after " + std::to_string(std::chrono::duration<double>(timeout).count()) + " s (" +
                          std::to_string(progress()) + " of " + std::to_string(size()) + " tasks done); the tasks go on");
    return value();
  }

  /// One task id per engine task.
  std::vector<std::uint64_t> msg_ids() const {
    std::vector<std::uint64_t> ids;
    for (const auto& t : all_tasks()) ids.push_back(t->id);
    return ids;
  }

  /// The engine each task ran on, in the order of msg_ids().
  std::vector<int> engine_ids() const {
    std::vector<int> ids;
    for (const auto& t : all_tasks()) ids.push_back(int(t->engine));
    return ids;
  }

  /// Seconds from submission until the last task finished (or until now, if not ready).
  double elapsed() const {
    take_in();
    std::uint64_t end = 0;
    for (const auto& t : all_tasks()) {
      if (!t->is_done()) {
        end = detail::now_ns();
        break;
      }
      end = std::max(end, t->finished_ns);
    }
    return end > state().submitted_ns ? double(end - state().submitted_ns) * 1e-9 : 0.0;
  }

  /// How many of the tasks have finished so far (without waiting; what has arrived is taken in).
  std::size_t progress() const {
    take_in();
    std::size_t n = 0;
    for (const auto& t : all_tasks()) n += t->is_done();
    return n;
  }
  /// How many tasks the result waits for: one per engine of a DirectView call, one per chunk of a map.
  std::size_t size() const { return all_tasks().size(); }

  /// Waits, showing progress on stderr: redrawn in place on a terminal, one summary line otherwise.
  void wait_interactive(std::chrono::milliseconds interval = std::chrono::milliseconds(100)) const {
    const bool tty = ::isatty(2);
    while (!wait_for(interval))
      if (tty) draw(true, false);
    draw(tty, true);
  }

  /// What each task printed to stdout on its engine, one string per task (in msg_ids() order).
  /// Waits for the result.
  std::vector<std::string> stdout() const { return outputs(false); }
  /// What each task printed to stderr on its engine, as stdout() does.
  std::vector<std::string> stderr() const { return outputs(true); }

  /// Prints the tasks' output to this process's stdout / stderr, each line prefixed "[stdout:N] " or
  /// "[stderr:N] " with the engine id, as IPython.parallel does.
  void display_outputs() const {
    wait();
    for (const auto& t : all_tasks())
      for (int k = 0; k < 2; ++k) {
        const std::string& s = t->output(k == 1);
        std::size_t start = 0;
        while (start < s.size()) {
          std::size_t nl = s.find('\n', start);
          if (nl == std::string::npos) nl = s.size();
          std::fprintf(k ? ::stderr : ::stdout, "[%s:%d] %.*s\n", k ? "stderr" : "stdout", int(t->engine), int(nl - start), s.data() + start);
          start = nl + 1;
        }
      }
    std::fflush(nullptr);
  }

  /// Aborts the unfinished tasks: queued ones never run; running ones are interrupted (their engine jumps
  /// out of the function and serves on; what the function held is leaked). get() then throws
  /// aborted_error. True when every unfinished task was aborted.
  bool abort() const {
    bool all = true;
    for (const auto& t : all_tasks())
      if (!t->is_done()) all &= core().abort(*t);
    return all;
  }

  /// When and where a task ran; the times are of std::chrono::steady_clock, zero until known.
  struct TaskMetadata {
    int engine_id;  ///< -1 while not known (a load-balanced task not finished yet)
    std::chrono::steady_clock::time_point submitted;  ///< when the client sent the task
    std::chrono::steady_clock::time_point started;    ///< when its engine began it
    std::chrono::steady_clock::time_point completed;  ///< when its engine finished it
  };
  /// When and where task i (in msg_ids() order) ran. std::out_of_range for i >= size().
  TaskMetadata metadata(std::size_t i = 0) const {
    take_in();
    const auto tasks = all_tasks();
    if (i >= tasks.size()) throw std::out_of_range("AsyncResult::metadata(" + std::to_string(i) + "): the result has " + std::to_string(tasks.size()) + " tasks");
    const auto& t = *tasks[i];
    auto tp = [](std::uint64_t ns) { return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns)); };
    const bool done = t.is_done();
    return {done && t.engine != detail::kAnyEngine ? int(t.engine) : -1, tp(t.submitted_ns), tp(done ? t.started_ns : 0),
            tp(done ? t.finished_ns : 0)};
  }

 protected:
  /// \cond internal
  friend struct detail::ResultAccess;

  /// A result of one task that `core` has not sent yet, allocated together with it: one heap block
  /// per task instead of three (the task, this result's state, a one-element task vector), which
  /// was a third of the client's time per load-balanced apply_async (perf of bench/lb_bench.cpp).
  /// Returns the result and the task to submit.
  static std::pair<AsyncResult, detail::Task> with_new_task(const std::shared_ptr<detail::ClientCore>& core, std::uint32_t engine,
                                                            Combine combine) {
    struct Block {
      Block() {}  // user-provided: make_shared would otherwise zero the task's result buffer first
      detail::TaskState task;
      State state;
    };
    auto block = std::make_shared<Block>();
    core->init_task(block->task, engine);
    detail::Task task(block, &block->task);
    State& s = block->state;
    s.combine = std::move(combine);
    s.submitted_ns = block->task.submitted_ns;
    // Non-owning: the block owns its task, and a task that owned the block would keep it alive for ever.
    s.own = detail::Task(std::shared_ptr<detail::TaskState>(), &block->task);
    AsyncResult r;
    r.core_ = core;
    r.s_ = std::shared_ptr<State>(std::move(block), &s);
    return {std::move(r), std::move(task)};
  }

  /// The tasks behind this result (for combinators such as LoadBalancedView::after); each keeps its task alive.
  std::vector<detail::Task> tasks() const {
    if (const auto& own = state().own) return {detail::Task(s_, own.get())};  // shares the block's ownership
    return state().tasks;
  }

  struct State {
    // No reference to the ClientCore here: a task allocated with its state is held by the core's
    // table of tasks in flight, and the state holding the core would make a cycle that keeps a
    // departed client alive (AsyncResult holds the core instead).
    State() = default;
    State(std::vector<detail::Task> t, Combine f)
        : tasks(std::move(t)), combine(std::move(f)), submitted_ns(tasks.empty() ? detail::now_ns() : tasks.front()->submitted_ns) {}
    std::vector<detail::Task> tasks;
    detail::Task own;  // instead of `tasks`: the single task allocated with this state (with_new_task), not owned
    Combine combine;
    std::uint64_t submitted_ns = 0;
    // The value is computed once: kIdle -> kCombining (one thread) -> kCombined. Not std::once_flag:
    // glibc's pthread_once ends every first call with a futex-wake system call, ~1 µs here, a third of
    // a hot round trip (perf record of bench/roundtrip_bench.cpp); not a mutex: 40 bytes per result.
    // std::atomic::notify_all makes no system call when nobody waits.
    static constexpr std::uint32_t kIdle = 0, kCombining = 1, kCombined = 2;
    std::atomic<std::uint32_t> phase{kIdle};
    std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
    std::exception_ptr error;
  };

  const State& state() const {
    if (!s_) throw error("this AsyncResult is empty (default-constructed)");
    return *s_;
  }

  detail::ClientCore& core() const {
    (void)state();  // the same error for an empty result
    return *core_;
  }

  bool all_done() const {
    for (const auto& t : all_tasks())
      if (!t->is_done()) return false;
    return true;
  }

  /// What a non-blocking query calls first: completions that have arrived are taken in.
  void take_in() const {
    if (!all_done()) core().poll_now();
  }

  /// The tasks, for reading while this result lives: a non-owning handle stands for a task allocated
  /// with the state, so they must not be kept beyond that (tasks() gives owning ones).
  std::span<const detail::Task> all_tasks() const {
    const State& s = state();
    return s.own ? std::span<const detail::Task>(&s.own, 1) : std::span<const detail::Task>(s.tasks);
  }

  std::vector<std::string> outputs(bool err) const {
    wait();
    std::vector<std::string> v;
    for (const auto& t : all_tasks()) v.push_back(t->output(err));
    return v;
  }

  T value() const {
    State& s = *s_;
    // The acquire loads pair with the release store of kCombined: value and error are then visible.
    for (std::uint32_t p = s.phase.load(std::memory_order_acquire); p != State::kCombined;) {
      if (p == State::kCombining) {
        s.phase.wait(p, std::memory_order_acquire);
        p = s.phase.load(std::memory_order_acquire);
      } else if (s.phase.compare_exchange_strong(p, State::kCombining, std::memory_order_acquire)) {
        try {
          if constexpr (std::is_void_v<T>) {
            s.combine(all_tasks());
            s.value.emplace(true);
          } else {
            s.value.emplace(s.combine(all_tasks()));
          }
        } catch (...) {
          s.error = std::current_exception();
        }
        s.phase.store(State::kCombined, std::memory_order_release);
        s.phase.notify_all();
        break;
      }
    }
    if (s.error) std::rethrow_exception(s.error);
    if constexpr (!std::is_void_v<T>) return *s.value;
  }

  /// One line of progress on stderr. On a terminal it is redrawn in place: `\r`, the line cut to one
  /// column less than the terminal's width (so it never wraps, which would break the `\r`), then
  /// clear-to-end-of-line (so a shorter line leaves nothing of the longer one before it). Elsewhere
  /// one whole line per call. `last`: ends the line on a terminal.
  void draw(bool tty, bool last) const {
    const std::size_t width = tty ? std::max<std::size_t>(detail::terminal_width(2), 2) - 1 : std::string::npos;
    const std::string line = detail::progress_line(progress(), size(), elapsed(), busy_engines(), width);
    if (tty) std::fprintf(::stderr, "\r%s\x1b[K%s", line.c_str(), last ? "\n" : "");
    else std::fprintf(::stderr, "%s\n", line.c_str());
    std::fflush(::stderr);
  }

  /// The engines running or holding one of the unfinished tasks, each once, in order: a direct task's
  /// engine, and the engines whose claim is one of the queued load-balanced tasks (those not taken yet
  /// have no engine).
  std::vector<int> busy_engines() const {
    auto& tr = core().transport();
    std::vector<char> busy(tr.engine_count(), 0);
    std::vector<std::pair<std::uint32_t, std::uint64_t>> queued;  // (queue, position)
    for (const auto& t : all_tasks()) {
      if (t->is_done()) continue;
      if (!t->balanced) {
        if (t->engine < busy.size()) busy[t->engine] = 1;
      } else if (t->queued.load(std::memory_order_acquire)) {
        queued.emplace_back(t->queue, t->pos.load(std::memory_order_relaxed));
      }
    }
    std::sort(queued.begin(), queued.end());
    for (std::uint32_t e = 0; e < busy.size() && !queued.empty(); ++e) {
      std::uint32_t q = 0;
      std::uint64_t pos = 0;
      if (tr.balanced_claim(e, q, pos) && std::binary_search(queued.begin(), queued.end(), std::pair{q, pos})) busy[e] = 1;
    }
    std::vector<int> out;
    for (std::size_t e = 0; e < busy.size(); ++e)
      if (busy[e]) out.push_back(int(e));
    return out;
  }

  std::shared_ptr<detail::ClientCore> core_;
  std::shared_ptr<State> s_;
  /// \endcond
};

namespace detail {

/// What the views (and the tests) reach in an AsyncResult beyond its public API: the tasks behind it,
/// and a result allocated together with its one task.
struct ResultAccess {
  template <class T>
  static std::vector<Task> tasks(const AsyncResult<T>& r) {
    return r.tasks();
  }
  template <class T>
  static std::pair<AsyncResult<T>, Task> with_new_task(const std::shared_ptr<ClientCore>& core, std::uint32_t engine,
                                                       typename AsyncResult<T>::Combine combine) {
    return AsyncResult<T>::with_new_task(core, engine, std::move(combine));
  }
};

}  // namespace detail

}  // namespace cadre
