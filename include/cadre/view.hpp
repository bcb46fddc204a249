// cadre/view.hpp — what EngineView and DirectView share: apply, execute, push, pull on a set of engines.
#pragma once

#include <cadre/async_result.hpp>
#include <cadre/detail/client/requests.hpp>

#include <algorithm>
#include <array>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cadre {

/// The operations of a view. Single = true: one engine, results are single values (EngineView);
/// Single = false: many engines, results are std::vector in the order of the view's targets (DirectView).
template <bool Single>
class BasicView {
 public:
  /// What a call whose function returns R gives: R for one engine, std::vector<R> for many.
  template <class R>
  using result_t = std::conditional_t<Single, R, detail::many_t<R>>;

  /// When true, apply/execute/push/erase wait for their result and rethrow errors before returning.
  bool block = false;

  /// A view of no engines; assign one from a Client before use.
  BasicView() = default;
  /// \cond internal
  explicit BasicView(detail::Targets t) : t_(std::move(t)) {}
  /// \endcond

  /// Calls f(args...) on every engine of the view; `cadre::ref("x")` arguments are read from each
  /// engine's namespace. A function whose first parameter is `cadre::Namespace&` receives the engine's.
  template <class F, class... Args>
  AsyncResult<result_t<detail::call_result_t<F, Args...>>> apply_async(F&& f, Args&&... args) const {
    using R = detail::call_result_t<F, Args...>;
    if constexpr (Single) {
      // One engine: the task is allocated with its result, as a load-balanced apply_async does (after
      // encoding, so that the task's submission time does not count it).
      const auto record = detail::apply_record(t_.core()->transport(), std::forward<F>(f), std::forward<Args>(args)...);
      auto made = detail::ResultAccess::with_new_task<R>(t_.core(), std::uint32_t(t_.ids().at(0)), detail::single<R>("result"));
      t_.send_apply(std::move(made.second), record);
      return std::move(made.first);
    } else {
      return make<R>(t_.apply(std::forward<F>(f), std::forward<Args>(args)...), "result", detail::ErrorPolicy::composite);
    }
  }

  /// Calls f(args...) and waits for the result(s).
  template <class F, class... Args>
  result_t<detail::call_result_t<F, Args...>> apply_sync(F&& f, Args&&... args) const {
    // The hot round trip: results read once, right here, need no AsyncResult (its once-only value
    // protocol, its reference to the client) and, when this thread may drain completions itself, no
    // task on the heap either (ClientCore::run): the tasks live in this frame (up to 8 engines), are
    // waited on and combined directly.
    using R = detail::call_result_t<F, Args...>;
    const auto record = detail::apply_record(t_.core()->transport(), std::forward<F>(f), std::forward<Args>(args)...);
    if constexpr (Single) (void)t_.ids().at(0);  // an EngineView names its engine
    return detail::run_and_combine<Single ? 1 : 8>(*t_.core(), t_.ids(), record,
                                                   combiner<R>("result", detail::ErrorPolicy::composite));
  }

  /// apply_async, or apply_sync's waiting when `block` is set (the result is then ready).
  template <class F, class... Args>
  AsyncResult<result_t<detail::call_result_t<F, Args...>>> apply(F&& f, Args&&... args) const {
    return blocking(apply_async(std::forward<F>(f), std::forward<Args>(args)...));
  }

  /// Runs f(cadre::Namespace&) on every engine of the view.
  template <class F>
  AsyncResult<void> execute(F&& f) const {
    static_assert(detail::call_traits<F>::takes_ns, "cadre: execute() takes a function of (cadre::Namespace&)");
    return blocking(make<void>(t_.apply(std::forward<F>(f)), "execute", detail::ErrorPolicy::composite));
  }

  /// Sets name = value in every engine's namespace.
  template <class T>
  AsyncResult<void> push(std::string_view name, const T& value) const {
    return blocking(make<void>(t_.push(name, value), "push", detail::ErrorPolicy::first));
  }

  /// The value of name on the engine(s), as T. Throws name_error (naming the engine) or type_error.
  template <class T>
  result_t<T> pull(std::string_view name) const {
    return pull_async<T>(name).get();
  }

  /// pull without waiting: the value(s) of name as T, when get() is called.
  template <class T>
  AsyncResult<result_t<T>> pull_async(std::string_view name) const {
    return make<T>(t_.named(detail::RecordKind::pull, name), "value '" + std::string(name) + "'", detail::ErrorPolicy::first);
  }

  /// Removes name from the engines' namespaces (absent names are ignored).
  AsyncResult<void> erase(std::string_view name) const {
    return blocking(make<void>(t_.named(detail::RecordKind::erase, name), "erase", detail::ErrorPolicy::first));
  }

  /// The names defined on each engine.
  result_t<std::vector<std::string>> names() const {
    return make<std::vector<std::string>>(t_.simple(detail::RecordKind::names), "names", detail::ErrorPolicy::first).get();
  }

  /// Aborts this client's unfinished tasks on the view's engines, as AsyncResult::abort does each:
  /// queued ones never run, running ones are interrupted; their futures throw aborted_error. Returns how
  /// many it reached. (Tasks another thread is waiting for in apply_sync are left to it.)
  std::size_t abort() const {
    const auto& ids = t_.ids();
    return t_.core()->abort_all([&](const detail::TaskState& t) {
      return !t.balanced && std::find(ids.begin(), ids.end(), int(t.engine)) != ids.end();
    });
  }

  /// The name "a" of `view["a"]`: assigning to it pushes a value, get<T>() pulls it. It refers to
  /// its view, so use it within the statement that makes it.
  class Item {
   public:
    /// The name `name` on the engines of v.
    Item(const BasicView& v, std::string name) : v_(v), name_(std::move(name)) {}
    /// Pushes value under the name, as view.push(name, value) (waiting only when the view blocks).
    template <class T>
    Item& operator=(const T& value) {
      v_.push(name_, value);
      return *this;
    }
    /// Pushes a std::string: a string literal is stored as text, not as a pointer.
    Item& operator=(const char* s) { return *this = std::string(s); }
    /// The value, pulled as T.
    template <class T>
    result_t<T> get() const {
      return v_.template pull<T>(name_);
    }

   private:
    const BasicView& v_;
    std::string name_;
  };
  /// `view["a"] = 5` pushes; `view["a"].get<int>()` pulls.
  Item operator[](std::string_view name) const { return Item(*this, std::string(name)); }

  /// The engine ids of this view, in order.
  const std::vector<int>& targets() const noexcept { return t_.ids(); }
  /// How many engines the view has (1 for an EngineView).
  std::size_t size() const noexcept { return t_.ids().size(); }

 protected:
  /// \cond internal
  /// What combines the view's tasks into its result: a single value, or one per engine.
  template <class R, class Label>
  static auto combiner(Label what, detail::ErrorPolicy policy) {
    if constexpr (Single) return detail::single<R>(std::move(what));
    else return detail::each<R>(std::move(what), policy);
  }

  template <class R, class Label>
  AsyncResult<result_t<R>> make(std::vector<detail::Task> tasks, Label what, detail::ErrorPolicy policy) const {
    return AsyncResult<result_t<R>>(t_.core(), std::move(tasks), combiner<R>(std::move(what), policy));
  }

  template <class A>
  A blocking(A ar) const {
    if (block) ar.get();
    return ar;
  }

  detail::Targets t_;
  /// \endcond
};

}  // namespace cadre
