// cadre/detail/client_core.hpp — the client's bookkeeping: tasks in flight, dispatch of completions, waiting, dead engines.
//
// Thread-safe: any thread may submit and wait. Sending to one engine serialises on a per-engine mutex
// (each ring has one producer); draining completions serialises on poll_mu_ (one consumer).
#pragma once

#include <cadre/detail/sys.hpp>
#include <cadre/detail/transport.hpp>
#include <cadre/detail/wire.hpp>
#include <cadre/errors.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace cadre::detail {

/// One task on one engine, shared by the futures that refer to it.
struct TaskState {
  std::uint64_t id = 0;
  std::uint32_t engine = 0;
  std::uint32_t generation = 0;
  std::uint64_t submitted_ns = 0, started_ns = 0, finished_ns = 0;
  Status status = Status::ok;
  std::vector<std::byte> inline_bytes;  // small payloads are copied here (16-byte aligned storage)
  std::vector<std::byte> type_head;     // set when the payload is a split typed value (wire.hpp)
  std::span<const std::byte> bytes;     // the payload: inline_bytes or a held block
  std::shared_ptr<void> hold;
  std::exception_ptr failure;           // set when the task never completed (engine died)
  std::atomic<bool> done{false};        // release-store after all fields are written; pairs with is_done()

  bool is_done() const noexcept { return done.load(std::memory_order_acquire); }
};
using Task = std::shared_ptr<TaskState>;

class ClientCore {
 public:
  explicit ClientCore(std::unique_ptr<Transport> t) : t_(std::move(t)), send_mu_(t_->engine_count()) {}

  Transport& transport() noexcept { return *t_; }
  std::uint32_t engine_count() const noexcept { return t_->engine_count(); }

  /// Sends one record to engine e and returns its task. `body` (from transport().allocate(e)) is
  /// owned by the engine afterwards.
  Task submit(std::uint32_t e, RecordKind kind, std::uint32_t aux, std::span<const std::byte> head, const OutBlock* body = nullptr) {
    auto t = std::make_shared<TaskState>();
    t->id = next_id_.fetch_add(1, std::memory_order_relaxed);
    t->engine = e;
    t->submitted_ns = now_ns();
    const EngineHealth h = t_->health(e, false);
    t->generation = h.generation;
    {
      std::lock_guard lock(tasks_mu_);
      pending_.emplace(t->id, t);
    }
    if (!h.alive) {
      if (body) t_->discard(*body);
      fail(*t, std::make_exception_ptr(engine_error(int(e), h.pid, h.signal, "it was already dead when the task was sent")));
      return t;
    }
    std::unique_lock lock(send_mu_[e]);
    while (!t_->try_send(e, t->id, kind, aux, head, body)) {
      // The engine's queue is full: drain completions (the engine may be waiting for us), then retry.
      lock.unlock();
      progress(200'000);
      if (!t_->health(e).alive) {
        if (body) t_->discard(*body);
        fail(*t, std::make_exception_ptr(engine_error(int(e), h.pid, t_->health(e).signal)));
        return t;
      }
      lock.lock();
    }
    return t;
  }

  /// Waits until t is done, or until deadline_ns (monotonic; 0 = forever). False on timeout.
  bool wait(const TaskState& t, std::uint64_t deadline_ns = 0) {
    while (!t.is_done()) {
      const std::uint64_t now = now_ns();
      if (deadline_ns && now >= deadline_ns) return false;
      const std::uint64_t slice = std::min<std::uint64_t>(kHealthPeriodNs, deadline_ns ? deadline_ns - now : kHealthPeriodNs);
      progress(slice, &t);
    }
    return true;
  }

  /// Drains what has arrived; if nothing did, sleeps at most slice_ns for more. Checks engine health
  /// now and then, failing the tasks of engines that died.
  void progress(std::uint64_t slice_ns, const TaskState* until = nullptr) {
    std::unique_lock lock(poll_mu_, std::try_to_lock);
    if (!lock) {
      // Another thread is draining; it will complete our task too.
      std::this_thread::sleep_for(std::chrono::microseconds(20));
      return;
    }
    if (drain()) return;
    if (until && until->is_done()) return;
    if (now_ns() >= next_health_ns_) check_health();
    if (until && until->is_done()) return;
    t_->wait(slice_ns);
    drain();
  }

  /// Number of tasks not yet completed.
  std::size_t pending() {
    std::lock_guard lock(tasks_mu_);
    return pending_.size();
  }

  /// Waits for every task of this client.
  void wait_all() {
    for (;;) {
      Task any;
      {
        std::lock_guard lock(tasks_mu_);
        if (pending_.empty()) return;
        any = pending_.begin()->second;
      }
      wait(*any);
    }
  }

 private:
  static constexpr std::uint64_t kHealthPeriodNs = 10'000'000;  // 10 ms: a dead engine fails its futures fast

  std::size_t drain() {
    return t_->poll([this](Completion& c) {
      Task t;
      {
        std::lock_guard lock(tasks_mu_);
        auto it = pending_.find(c.task_id);
        if (it == pending_.end() || it->second->engine != c.engine) return;  // failed already, or not ours
        t = std::move(it->second);
        pending_.erase(it);
      }
      t->status = c.status;
      t->type_head.assign(c.head.begin(), c.head.end());
      t->started_ns = c.started_ns;
      t->finished_ns = c.finished_ns;
      if (c.hold) {
        t->hold = std::move(c.hold);
        t->bytes = c.bytes;
      } else {
        t->inline_bytes.assign(c.bytes.begin(), c.bytes.end());
        t->bytes = t->inline_bytes;
      }
      t->done.store(true, std::memory_order_release);
    });
  }

  void fail(TaskState& t, std::exception_ptr e) {
    {
      std::lock_guard lock(tasks_mu_);
      pending_.erase(t.id);
    }
    t.failure = std::move(e);
    t.finished_ns = now_ns();
    t.done.store(true, std::memory_order_release);
  }

  void check_health() {
    next_health_ns_ = now_ns() + kHealthPeriodNs;
    std::vector<Task> tasks;
    {
      std::lock_guard lock(tasks_mu_);
      for (auto& [id, t] : pending_) tasks.push_back(t);
    }
    if (tasks.empty()) return;
    const std::uint32_t n = t_->engine_count();
    std::vector<EngineHealth> health(n);
    std::vector<std::uint8_t> checked(n, 0), dead(n, 0);
    bool any = false;
    for (auto& t : tasks) {
      const std::uint32_t e = t->engine;
      if (!checked[e]) {
        checked[e] = 1;
        health[e] = t_->health(e);
        if (!health[e].alive) {
          // The launcher records the killing signal when it reaps; give it a moment to do so.
          const auto [it, fresh] = grace_.emplace(e, now_ns());
          dead[e] = health[e].signal != 0 || now_ns() - it->second > 100'000'000;
        }
      }
      if (dead[e] || health[e].generation != t->generation) any = true;
    }
    if (!any) return;
    drain();  // completions posted just before the death still count
    for (auto& t : tasks) {
      const std::uint32_t e = t->engine;
      const auto& h = health[e];
      if (t->is_done() || !(dead[e] || h.generation != t->generation)) continue;
      fail(*t, std::make_exception_ptr(engine_error(int(e), h.pid, h.signal, dead[e] ? "" : "it was restarted")));
    }
    for (std::uint32_t e = 0; e < n; ++e)
      if (dead[e]) grace_.erase(e);
  }

  std::unique_ptr<Transport> t_;
  std::vector<std::mutex> send_mu_;
  std::mutex poll_mu_;
  std::mutex tasks_mu_;
  std::unordered_map<std::uint64_t, Task> pending_;
  std::atomic<std::uint64_t> next_id_{1};
  std::uint64_t next_health_ns_ = 0;
  std::unordered_map<std::uint32_t, std::uint64_t> grace_;
};

}  // namespace cadre::detail
