// cadre/detail/task_state.hpp — TaskState: one task the client sent, and what came back for it.
#pragma once

#include <cadre/detail/layout.hpp>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace cadre::detail {

inline constexpr std::uint32_t kAnyEngine = ~0u;

/// One task, shared by the futures that refer to it.
struct TaskState {
  std::uint64_t id = 0;
  std::uint32_t engine = 0;             // kAnyEngine for a load-balanced task until an engine finishes it
  std::uint32_t generation = 0;
  std::uint64_t submitted_ns = 0, started_ns = 0, finished_ns = 0;
  Status status = Status::ok;
  std::vector<std::byte> inline_bytes;  // payloads not held in a block are copied here, or into `small`
  std::vector<std::byte> type_head;     // set when the payload is a split typed value (wire.hpp)
  std::span<const std::byte> bytes;     // the payload: inline_bytes or a held block
  std::shared_ptr<void> hold;
  std::exception_ptr failure;           // set when the task never completed (engine died, aborted, ...)
  std::string out, err;                 // what the task printed on its engine
  std::atomic<bool> done{false};        // release-store after all fields are written; pairs with is_done()

  // Load-balanced tasks only:
  bool balanced = false;
  // Written by the submitting thread (or, on a retry, the one checking health) while other threads
  // may read them to abort or to check deadlines: pos is stored before queued is released.
  std::atomic<bool> queued{false};      // false while waiting for dependencies
  std::uint32_t queue = 0;
  std::atomic<std::uint64_t> pos{0};    // position in its queue
  std::uint64_t deadline_ns = 0;        // must start by then (0: no limit)
  int retries_left = 0;
  RecordKind kind = RecordKind::apply;
  std::vector<std::byte> record;        // kept for retries and for deferred sending
  std::vector<std::shared_ptr<TaskState>> after;  // must all succeed before this one is sent

  // Most results are a few bytes: they go here, with no allocation (16-byte aligned, as decoders expect).
  static constexpr std::size_t kSmall = 64;
  alignas(16) std::byte small[kSmall];

  TaskState() noexcept {}  // user-provided: `small` is not zeroed on every task

  bool is_done() const noexcept { return done.load(std::memory_order_acquire); }

  /// Copies a payload that is not held in a block.
  void keep(std::span<const std::byte> b) {
    if (b.size() <= kSmall) {
      if (!b.empty()) std::memcpy(small, b.data(), b.size());
      bytes = {small, b.size()};
    } else {
      inline_bytes.assign(b.begin(), b.end());
      bytes = inline_bytes;
    }
  }
};
using Task = std::shared_ptr<TaskState>;

}  // namespace cadre::detail
