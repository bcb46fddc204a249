// cadre/detail/client/task_result.hpp — what a finished task yields: its value or its error, and how a
// view combines the tasks of its engines into one result.
#pragma once

#include <cadre/detail/client/client_core.hpp>
#include <cadre/detail/client/task_state.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/errors.hpp>

#include <array>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace cadre::detail {

/// The error of a finished task that failed: out of line (see task_error), as it builds the exception.
[[gnu::noinline, gnu::cold]] inline std::exception_ptr failed_task_error(const TaskState& t) {
  if (t.failure) return t.failure;
  const int e = int(t.engine);
  std::vector<std::string> s;
  try {
    s = get_strings(t.bytes);
  } catch (const decode_error& err) {
    return std::make_exception_ptr(decode_error(std::string("engine ") + std::to_string(e) + " sent a corrupt error record: " + err.what()));
  }
  auto at = [&](std::size_t i) { return i < s.size() ? s[i] : std::string(); };
  switch (t.status) {
    case Status::remote_error: return std::make_exception_ptr(remote_error(e, at(0), at(1)));
    case Status::name_error: return std::make_exception_ptr(name_error(e, at(0)));
    case Status::type_error: {
      std::string context = at(2);
      if (auto p = context.find(": stored "); p != std::string::npos) context.resize(p);
      return std::make_exception_ptr(type_error(at(0), at(1), context));
    }
    case Status::function_error: return std::make_exception_ptr(function_error(at(0)));
    case Status::capacity_error: return std::make_exception_ptr(capacity_error(at(0)));
    case Status::decode_error: return std::make_exception_ptr(decode_error(at(0)));
    case Status::aborted: return std::make_exception_ptr(aborted_error(s.empty() ? "task " + std::to_string(t.id) + " was aborted" : at(0)));
    case Status::timeout: return std::make_exception_ptr(timeout_error(at(0)));
    default: return std::make_exception_ptr(error("engine " + std::to_string(e) + " sent unknown status " + std::to_string(unsigned(t.status))));
  }
}

/// The error a finished task carries, or nullptr when it succeeded (inline: every result checks it).
inline std::exception_ptr task_error(const TaskState& t) {
  if (t.status == Status::ok && !t.failure) [[likely]]
    return nullptr;
  return failed_task_error(t);
}

/// The typed value a finished task carries (its payload, with the type head when it came split).
inline TypedView typed_of(const TaskState& t) {
  return t.type_head().empty() ? parse_typed(t.bytes) : typed_from_head(t.type_head(), t.bytes);
}

/// The value of a successful task (R = void: nothing).
template <class R>
R task_value(const TaskState& t, std::string_view what) {
  if constexpr (std::is_void_v<R>) {
    (void)t, (void)what;
  } else {
    return decode_typed<R>(typed_of(t), [&] { return std::string(what) + " on engine " + std::to_string(t.engine); });
  }
}

/// How many-task results combine errors: apply-style calls gather every failure into a
/// composite_error, whatever the number of tasks (as IPython does for a DirectView, even of one engine);
/// data calls (pull, gather) rethrow the first failure as it is.
enum class ErrorPolicy { composite, first };

inline void throw_errors(std::span<const Task> tasks, ErrorPolicy policy) {
  std::vector<composite_error::failure> failures;
  for (const auto& t : tasks)
    if (auto e = task_error(*t)) {
      if (policy == ErrorPolicy::first) std::rethrow_exception(e);
      std::string what;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        what = x.what();
      }
      failures.push_back({int(t->engine), std::move(what), e});
    }
  if (!failures.empty()) throw composite_error(std::move(failures));
}


// `what` names the value in error messages: a string literal where it can be (a lambda holding only
// a pointer fits in std::function without an allocation), a std::string where it is built.

/// Combines tasks into one value per engine.
template <class R, class Label>
auto each(Label what, ErrorPolicy policy) {
  return [what = std::move(what), policy](std::span<const Task> tasks) {
    throw_errors(tasks, policy);
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      std::vector<R> out;
      out.reserve(tasks.size());
      for (const auto& t : tasks) out.push_back(task_value<R>(*t, what));
      return out;
    }
  };
}

/// Combines the single task of a one-engine view.
template <class R, class Label>
auto single(Label what) {
  return [what = std::move(what)](std::span<const Task> tasks) -> R {
    if (tasks.size() != 1) throw error("internal: a one-engine result has " + std::to_string(tasks.size()) + " tasks");
    throw_errors(tasks, ErrorPolicy::first);
    return task_value<R>(*tasks[0], what);
  };
}

template <class R>
using many_t = std::conditional_t<std::is_void_v<R>, void, std::vector<R>>;

/// Sends one apply record to each engine of `ids`, waits for all, and combines their tasks. The tasks
/// live in the caller's frame (up to OnStack of them) when this thread may drain completions itself
/// (ClientCore::run): the hot round trip then allocates nothing and needs no AsyncResult.
template <std::size_t OnStack, class Combine>
auto run_and_combine(ClientCore& core, const std::vector<int>& ids, std::span<const std::byte> record, Combine&& combine) {
  std::array<TaskState, OnStack> local;
  std::array<Task, OnStack> local_handles;
  std::unique_ptr<TaskState[]> heap;
  std::vector<Task> heap_handles;
  if (ids.size() > OnStack) {
    heap = std::make_unique<TaskState[]>(ids.size());
    heap_handles.resize(ids.size());
  }
  const std::span<TaskState> sts(heap ? heap.get() : local.data(), ids.size());
  const std::span<Task> tasks(heap ? heap_handles.data() : local_handles.data(), ids.size());
  if (core.run(sts, ids, RecordKind::apply, record)) {
    for (std::size_t i = 0; i < sts.size(); ++i) tasks[i] = Task(Task(), &sts[i]);  // own nothing: sts outlives them
  } else {
    for (std::size_t i = 0; i < ids.size(); ++i) tasks[i] = core.submit(std::uint32_t(ids[i]), RecordKind::apply, 0, record);
    for (const Task& t : tasks) core.wait(*t);
  }
  return combine(std::span<const Task>(tasks));
}

}  // namespace cadre::detail
