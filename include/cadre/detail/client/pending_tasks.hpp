// cadre/detail/client/pending_tasks.hpp — PendingTasks: the client's tasks in flight, found by id.
#pragma once

#include <cadre/detail/client/task_state.hpp>

#include <algorithm>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace cadre::detail {

/// The tasks a client has sent and not yet seen finish, by id; the table owns a reference to each.
/// Not thread-safe: ClientCore holds its tasks mutex around every call.
///
/// An open-addressing table (Robin Hood linear probing, deletion by backward shift) rather than
/// std::unordered_map, which allocated a node per task and divided by a prime on each insert, find
/// and erase: with the node's malloc and free, ~10% of the client's instructions per load-balanced
/// apply_async (callgrind of bench/lb_bench.cpp). Ids are handed out one after another, so the tasks
/// in flight are mostly a run of consecutive ids and `id & mask` puts them in distinct slots.
class PendingTasks {
 public:
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// Adds t; its id must not be in the table.
  void insert(Task t) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(std::max(kMinSlots, slots_.size() * 2));
    place(std::move(t));
    ++size_;
  }

  /// Removes the task with this id and returns it, when there is one and `accept(task)` says yes;
  /// otherwise returns null and leaves the table as it was.
  template <class Accept>
  Task take(std::uint64_t id, Accept&& accept) {
    const std::size_t i = find(id);
    if (i == kNone || !accept(*slots_[i])) return nullptr;
    Task t = std::move(slots_[i]);
    remove_at(i);
    return t;
  }

  /// Removes the task with this id; false when there was none.
  bool erase(std::uint64_t id) noexcept {
    const std::size_t i = find(id);
    if (i == kNone) return false;
    slots_[i].reset();
    remove_at(i);
    return true;
  }

  /// Calls f(task) for every task in the table (f must not change the table).
  template <class F>
  void for_each(F&& f) const {
    for (const Task& t : slots_)
      if (t) f(t);
  }

 private:
  static constexpr std::size_t kMinSlots = 64;  // a power of two, like every size of the table
  static constexpr std::size_t kNone = ~std::size_t(0);

  std::size_t home(std::uint64_t id) const noexcept { return std::size_t(id) & mask_; }

  /// How far the task in slot i sits from its home slot.
  std::size_t distance(std::size_t i) const noexcept { return (i - home(slots_[i]->id)) & mask_; }

  /// Robin Hood insertion: a task walking past one that sits nearer its home takes that slot and the
  /// displaced task walks on. Every probe run is then ordered by distance from home, which lets find()
  /// stop early and remove_at() stop at the first task that is at home.
  void place(Task t) {
    std::size_t d = 0;
    for (std::size_t i = home(t->id);; i = (i + 1) & mask_, ++d) {
      if (!slots_[i]) {
        slots_[i] = std::move(t);
        return;
      }
      if (const std::size_t di = distance(i); di < d) {
        std::swap(t, slots_[i]);
        d = di;
      }
    }
  }

  std::size_t find(std::uint64_t id) const noexcept {
    if (slots_.empty()) return kNone;
    for (std::size_t i = home(id), d = 0;; i = (i + 1) & mask_, ++d) {
      // The table is never full, so every probe ends.
      if (!slots_[i] || distance(i) < d) return kNone;
      if (slots_[i]->id == id) return i;
    }
  }

  /// Empties slot i (already moved from) and closes the gap: the rest of its probe run moves back one
  /// slot, up to an empty slot or a task at home.
  void remove_at(std::size_t i) noexcept {
    for (std::size_t j = (i + 1) & mask_; slots_[j] && distance(j) > 0; j = (j + 1) & mask_) {
      slots_[i] = std::move(slots_[j]);
      i = j;
    }
    slots_[i].reset();
    --size_;
    // Shrink after a burst, so that scans (health checks every 10 ms) stay proportional to the
    // tasks in flight. Best effort: a removal never fails, or the task removed would be lost to its waiters.
    if (slots_.size() > kMinSlots && size_ * 8 < slots_.size()) {
      try {
        rehash(slots_.size() / 2);
      } catch (const std::bad_alloc&) {
      }
    }
  }

  void rehash(std::size_t n) {
    std::vector<Task> old = std::exchange(slots_, std::vector<Task>(n));  // the one step that may throw
    mask_ = n - 1;
    for (Task& t : old)
      if (t) place(std::move(t));
  }

  std::vector<Task> slots_;
  std::size_t mask_ = 0, size_ = 0;
};

}  // namespace cadre::detail
