// cadre/detail/client/client_core.hpp — the client's bookkeeping: tasks in flight, dispatch of completions, waiting, dead engines.
//
// Thread-safe: any thread may submit and wait. Sending to one engine serialises on a per-engine lock
// (each ring has one producer); draining completions serialises on poll_mu_ (one consumer).
// Load-balanced tasks go to shared queues that free engines take from; the client only watches them:
// it re-sends (retries) or fails the task a dead engine held, times out tasks not started in time,
// and releases tasks whose dependencies have finished.
#pragma once

#include <cadre/detail/engine/crash_report.hpp>
#include <cadre/detail/client/pending_tasks.hpp>
#include <cadre/detail/base/spin_lock.hpp>
#include <cadre/detail/base/sys.hpp>
#include <cadre/detail/base/task_clock.hpp>
#include <cadre/detail/client/transport.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/errors.hpp>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

namespace cadre::detail {


class ClientCore {
 public:
  explicit ClientCore(std::unique_ptr<Transport> t)
      : t_(std::move(t)), send_mu_(t_->engine_count()), seen_gen_(t_->engine_count(), 0), death_done_(t_->engine_count(), 0) {
    for (std::uint32_t e = 0; e < t_->engine_count(); ++e) seen_gen_[e] = t_->health(e, false).generation;
  }

  Transport& transport() noexcept { return *t_; }
  std::uint32_t engine_count() const noexcept { return t_->engine_count(); }

  /// Sends one record to engine e and returns its task. `body` (from transport().allocate(e)) is
  /// owned by the engine afterwards.
  Task submit(std::uint32_t e, RecordKind kind, std::uint32_t aux, std::span<const std::byte> head, const OutBlock* body = nullptr) {
    Task t = make_task(e);
    submit(t, e, kind, aux, head, body);
    return t;
  }

  /// The same for a task made elsewhere and set up with init_task(*t, e). The table of tasks in flight
  /// takes `task` (pass it by move), so the caller must hold another reference until this returns:
  /// a failed task leaves the table, and another thread may fail it meanwhile.
  /// `holding_poll`: the caller holds poll_mu_ (run()), so a full ring is waited out by draining here.
  void submit(Task task, std::uint32_t e, RecordKind kind, std::uint32_t aux, std::span<const std::byte> head, const OutBlock* body = nullptr,
              bool holding_poll = false) {
    TaskState* const t = task.get();
    const EngineHealth h = t_->health(e, false);
    t->generation = h.generation;
    track(std::move(task));
    if (!h.alive) {
      if (body) t_->discard(*body);
      fail(*t, std::make_exception_ptr(engine_error(int(e), h.pid, h.signal, "it was already dead when the task was sent")));
      return;
    }
    std::unique_lock lock(send_mu_[e]);
    for (;;) {
      if (t->is_done()) {  // aborted while it waited for room in the ring: it is not sent at all
        if (body) t_->discard(*body);
        return;
      }
      const auto sent = try_send(*t, e, kind, aux, head, body);
      if (sent == Transport::SendResult::sent) break;
      if (sent == Transport::SendResult::engine_gone) {  // reaped since health() said it lived; body is freed
        lock.unlock();
        fail(*t, death_of(e, t->generation, t_->health(e, false), "it died before the task was sent"));
        return;
      }
      if (sent == Transport::SendResult::broken) [[unlikely]] {  // waiting for room would wait for ever
        lock.unlock();
        if (body) t_->discard(*body);
        std::string why = t_->damage();
        if (why.empty()) why = t_->describe() + ": the queue to engine " + std::to_string(e) + " is damaged; stop the cluster and start it again";
        fail(*t, std::make_exception_ptr(connection_error(why)));
        return;
      }
      // The engine's queue is full: drain completions (the engine may be waiting for us), then retry.
      lock.unlock();
      if (holding_poll) progress_locked(200'000);
      else progress(200'000);
      if (t->is_done()) {  // failed meanwhile by a health check (the cluster is damaged or stopping)
        if (body) t_->discard(*body);
        return;
      }
      const EngineHealth now = t_->health(e);
      if (!now.alive || now.generation != t->generation) {
        if (body) t_->discard(*body);
        // The launcher records how the engine died when it reaps it. Until it has (it may not have been
        // scheduled yet), leave the task pending, unsent: check_health() fails it once the launcher has
        // had its grace period, with the signal then known.
        const EngineHealth recorded = t_->health(e, false);
        if (!recorded.alive || recorded.generation != t->generation) fail(*t, death_of(e, t->generation, recorded));
        return;
      }
      lock.lock();
    }
  }

  /// Sends one record to each engine (sts[i] is engines[i]'s task) and waits for their completions, for
  /// a caller that reads the results at once (apply_sync). The tasks live in the caller's `sts`: no
  /// allocation, no reference counts (the table of tasks holds handles that own nothing). That is safe
  /// only because this thread drains completions until the tasks are done, so no other thread can be
  /// holding a handle (check_health and drain run under poll_mu_; wait_all takes no handles). False,
  /// with nothing sent, when another thread is draining: use submit() and wait() then.
  bool run(std::span<TaskState> sts, std::span<const int> engines, RecordKind kind, std::span<const std::byte> record) {
    std::unique_lock poll(poll_mu_, std::try_to_lock);
    if (!poll) return false;
    for (std::size_t i = 0; i < sts.size(); ++i) init_task(sts[i], std::uint32_t(engines[i]));
    struct Untrack {  // an exception leaves no handle to a dead stack frame in the table
      ClientCore& core;
      std::span<TaskState> ts;
      ~Untrack() {
        std::lock_guard lock(core.tasks_mu_);
        for (const TaskState& t : ts)
          if (!t.is_done()) core.pending_.erase(t.id);
      }
    } untrack{*this, sts};
    for (std::size_t i = 0; i < sts.size(); ++i) submit(Task(Task(), &sts[i]), std::uint32_t(engines[i]), kind, 0, record, nullptr, true);
    for (const TaskState& st : sts) {
      while (!st.is_done()) {
        progress_locked(kHealthPeriodNs, &st);
        send_deferred(true);  // other threads' progress() cannot drain meanwhile: release what is ready here
      }
    }
    poll.unlock();
    send_deferred();
    return true;
  }

  /// Queues a load-balanced task on queue q: the first free engine allowed there runs it. It is sent
  /// only once every task in `after` has succeeded (it fails with dependency_error otherwise).
  Task submit_balanced(std::uint32_t q, RecordKind kind, std::span<const std::byte> record, int retries,
                       std::uint64_t timeout_ns, std::vector<Task> after = {}) {
    Task t = make_task(kAnyEngine);
    submit_balanced(t, q, kind, record, retries, timeout_ns, std::move(after));
    return t;
  }

  /// The same for a task made elsewhere and set up with init_task(*t, kAnyEngine).
  void submit_balanced(const Task& t, std::uint32_t q, RecordKind kind, std::span<const std::byte> record, int retries,
                       std::uint64_t timeout_ns, std::vector<Task> after) {
    t->balanced = true;
    t->queue = q;
    t->kind = kind;
    t->retries_left = retries;
    t->deadline_ns = timeout_ns ? t->submitted_ns + timeout_ns : 0;
    const bool deferred = !after.empty();
    if (retries > 0 || deferred) {
      auto& x = t->extra();
      x.after = std::move(after);
      x.record.assign(record.begin(), record.end());
    }
    track(t);
    if (!deferred) send_balanced(*t, record);
    else {
      std::lock_guard lock(tasks_mu_);
      deferred_.push_back(t);
      has_deferred_.store(true, std::memory_order_relaxed);
    }
  }

  /// Gives a new task its id, its engine (kAnyEngine: load-balanced) and its submission time.
  void init_task(TaskState& t, std::uint32_t e) {
    t.id = next_id_.fetch_add(1, std::memory_order_relaxed);
    t.engine = e;
    t.submitted_ns = task_now_ns();
  }

  /// Aborts a task. A queued one never runs; a running one is interrupted (its engine jumps out of it
  /// and serves on; get() throws aborted_error). False when it already finished.
  [[nodiscard]] bool abort(TaskState& t) {
    if (t.is_done()) return false;
    if (!t.balanced) return abort_direct(t);
    if (t.queued ? t_->cancel_balanced(t.queue, t.pos) : remove_deferred(t)) {
      fail(t, std::make_exception_ptr(aborted_error("task " + std::to_string(t.id) + " was aborted before it started")));
      return true;
    }
    for (std::uint32_t e = 0; e < t_->engine_count(); ++e) {
      std::uint32_t q;
      std::uint64_t p;
      if (t_->balanced_claim(e, q, p) && q == t.queue && p == t.pos) return t_->interrupt(e, t.id);
    }
    return false;
  }

  /// A direct task: a record still in its engine's queue is marked there, and the engine completes it
  /// as aborted without running it; one not sent yet (its sender waits for room in the queue) fails here
  /// and is never sent; a running one is interrupted.
  bool abort_direct(TaskState& t) {
    std::unique_lock lock(send_mu_[t.engine]);  // no record is sent to this engine meanwhile
    if (!t.queued.load(std::memory_order_relaxed))
      return fail_if_pending(t, std::make_exception_ptr(aborted_error("task " + std::to_string(t.id) + " was aborted before it was sent")));
    const bool marked = t_->cancel_queued(t.engine, t.pos.load(std::memory_order_relaxed), t.id);
    lock.unlock();
    const bool interrupted = t_->interrupt(t.engine, t.id);  // it may have started before the mark
    return marked || interrupted;
  }

  /// Aborts every unfinished task of this client that `pick(task)` selects, the newest first (an
  /// engine's queued records before the one it runs, so that it does not start them meanwhile).
  /// Tasks of an apply_sync in progress are left to it: their state lives in its caller's frame. Returns
  /// how many were aborted (queued ones skipped, running ones signalled).
  template <class Pick>
  std::size_t abort_all(Pick&& pick) {
    std::vector<Task> tasks;
    {
      std::lock_guard lock(tasks_mu_);
      pending_.for_each([&](const Task& t) {
        if (t.use_count() > 0 && !t->is_done() && pick(*t)) tasks.push_back(t);
      });
    }
    std::sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a->id > b->id; });
    std::size_t n = 0;
    for (const Task& t : tasks) n += abort(*t) ? 1 : 0;
    return n;
  }

  /// Waits until t is done, or until deadline_ns (monotonic; 0 = forever). False on timeout.
  bool wait(const TaskState& t, std::uint64_t deadline_ns = 0) {
    while (!t.is_done()) {
      std::uint64_t slice = kHealthPeriodNs;
      if (deadline_ns) {
        const std::uint64_t now = now_ns();
        if (now >= deadline_ns) return false;
        slice = std::min(slice, deadline_ns - now);
      }
      progress(slice, &t);
    }
    return true;
  }

  /// Drains what has arrived; if nothing did, sleeps at most slice_ns for more. Now and then checks
  /// engine health (failing or retrying the tasks of engines that died) and load-balanced deadlines,
  /// and sends deferred tasks whose dependencies are done.
  void progress(std::uint64_t slice_ns, const TaskState* until = nullptr) {
    {
      std::unique_lock lock(poll_mu_, std::try_to_lock);
      if (!lock) {
        // Another thread is draining; it completes our task too.
        std::this_thread::sleep_for(std::chrono::microseconds(20));
        return;
      }
      progress_locked(slice_ns, until);
    }
    send_deferred();
  }

  /// Takes in what has arrived, without waiting: the non-blocking queries (AsyncResult::ready, progress,
  /// elapsed, metadata, Client::queue_status) call it, so that a loop that polls them sees its tasks
  /// finish. Also fails the tasks of dead engines once per health period, as waiting does.
  void poll_now() {
    {
      std::unique_lock lock(poll_mu_, std::try_to_lock);
      if (!lock) return;  // another thread is draining: it takes in our completions too
      drain();
      if (coarse_now_ns() >= next_health_ns_) check_health();
    }
    send_deferred();
  }

  /// Number of tasks not yet completed.
  std::size_t pending() {
    std::lock_guard lock(tasks_mu_);
    return pending_.size();
  }

  /// Waits for every task of this client.
  void wait_all() {
    // Without taking a handle from the table: the task of a run() in another thread lives on its stack.
    for (;;) {
      bool empty;
      {
        std::lock_guard lock(tasks_mu_);
        empty = pending_.size() == 0;
      }
      if (!empty) {
        progress(kHealthPeriodNs);
        continue;
      }
      // drain() takes a task out of the table before it marks it done, both under poll_mu_: once we
      // hold poll_mu_, every task taken out has been marked.
      if (std::unique_lock poll(poll_mu_, std::try_to_lock); poll) return;
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

 private:
  static constexpr std::uint64_t kHealthPeriodNs = 10'000'000;  // 10 ms: a dead engine fails its futures fast

  /// progress() for a thread that holds poll_mu_.
  void progress_locked(std::uint64_t slice_ns, const TaskState* until = nullptr) {
    if (drain() || (until && until->is_done())) return;
    if (coarse_now_ns() >= next_health_ns_) check_health();
    if (until && until->is_done()) return;
    t_->wait(slice_ns);
    drain();
  }

  /// try_send that forgets the task when sending throws (e.g. no room to spill a large record).
  Transport::SendResult try_send(TaskState& t, std::uint32_t e, RecordKind kind, std::uint32_t aux, std::span<const std::byte> head,
                                 const OutBlock* body) {
    try {
      std::uint64_t position = 0;
      const auto sent = t_->try_send(e, t.id, kind, aux, head, body, position);
      if (sent == Transport::SendResult::sent) {
        // For abort(), which reads them under the same send lock.
        t.pos.store(position, std::memory_order_relaxed);
        t.queued.store(true, std::memory_order_relaxed);
      }
      return sent;
    } catch (...) {
      std::lock_guard lock(tasks_mu_);
      pending_.erase(t.id);
      throw;
    }
  }

  Task make_task(std::uint32_t e) {
    auto t = std::make_shared<TaskState>();
    init_task(*t, e);
    return t;
  }

  void track(Task t) {
    std::lock_guard lock(tasks_mu_);
    pending_.insert(std::move(t));
  }

  /// `holding_poll`: the caller holds poll_mu_ (a retry from check_health, or run()), so a full queue is waited
  /// out by draining here rather than through progress(), which would lock poll_mu_ again.
  void send_balanced(TaskState& t, std::span<const std::byte> record, bool holding_poll = false) {
    std::unique_lock lock(lb_mu_[t.queue]);
    std::uint64_t pos = 0;
    for (;;) {
      bool sent;
      try {
        sent = t_->try_send_balanced(t.queue, t.id, t.kind, 0, record, t.deadline_ns, pos);
      } catch (...) {
        std::lock_guard tl(tasks_mu_);
        pending_.erase(t.id);
        throw;
      }
      if (sent) break;
      lock.unlock();
      // The queue is full: wait for engines to take tasks.
      if (holding_poll) {
        drain();
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      } else {
        progress(200'000);
      }
      lock.lock();
    }
    t.pos.store(pos, std::memory_order_relaxed);
    t.queued.store(true, std::memory_order_release);
  }

  bool remove_deferred(TaskState& t) {
    std::lock_guard lock(tasks_mu_);
    for (auto it = deferred_.begin(); it != deferred_.end(); ++it)
      if (it->get() == &t) {
        deferred_.erase(it);
        has_deferred_.store(!deferred_.empty(), std::memory_order_relaxed);
        return true;
      }
    return false;
  }

  /// Sends deferred tasks whose dependencies all succeeded; fails those with a failed dependency.
  /// `holding_poll`: the caller holds poll_mu_ (run()), so a full queue is waited out by draining.
  void send_deferred(bool holding_poll = false) {
    // Every wait passes here: without deferred tasks (the common case) it costs one load, inline.
    if (has_deferred_.load(std::memory_order_relaxed)) [[unlikely]]
      send_ready_deferred(holding_poll);
  }

  [[gnu::noinline]] void send_ready_deferred(bool holding_poll) {
    std::vector<Task> ready, broken;
    {
      std::lock_guard lock(tasks_mu_);
      if (deferred_.empty()) return;
      for (auto it = deferred_.begin(); it != deferred_.end();) {
        bool all_done = true, failed = false;
        for (const auto& d : (*it)->after()) {
          all_done &= d->is_done();
          failed |= d->is_done() && (d->failure || d->status != Status::ok);
        }
        if (failed) broken.push_back(*it);
        else if (all_done) ready.push_back(*it);
        else {
          ++it;
          continue;
        }
        it = deferred_.erase(it);
      }
      has_deferred_.store(!deferred_.empty(), std::memory_order_relaxed);
    }
    for (auto& t : broken) {
      std::string which;
      for (const auto& d : t->after())
        if (d->is_done() && (d->failure || d->status != Status::ok)) which += (which.empty() ? "" : ", ") + std::to_string(d->id);
      fail(*t, std::make_exception_ptr(dependency_error("task " + std::to_string(t->id) + " did not run: the task(s) it depends on (" + which + ") failed")));
    }
    for (auto& t : ready) {
      t->extras->after.clear();
      send_balanced(*t, t->extras->record, holding_poll);
    }
  }

  std::size_t drain() {
    auto on_completion = [this](Completion& c) {
      Task t;
      {
        std::lock_guard lock(tasks_mu_);
        // Absent: failed already. A direct task answered by another engine: not ours.
        t = pending_.take(c.task_id, [&](const TaskState& p) { return p.balanced || p.engine == c.engine; });
        if (!t) return;
      }
      t->engine = c.engine;
      t->status = c.status;
      t->started_ns = c.started_ns;
      t->finished_ns = c.finished_ns;
      if (!c.head.empty() || !c.out.empty() || !c.err.empty()) {
        auto& x = t->extra();
        x.type_head.assign(c.head.begin(), c.head.end());
        x.out = std::move(c.out);
        x.err = std::move(c.err);
      }
      if (c.hold) {
        t->hold = std::move(c.hold);
        t->bytes = c.bytes;
      } else {
        t->keep(c.bytes);
      }
      t->done.store(true, std::memory_order_release);
    };
    return t_->poll(on_completion);
  }

  void fail(TaskState& t, std::exception_ptr e) {
    {
      std::lock_guard lock(tasks_mu_);
      pending_.erase(t.id);
    }
    set_failed(t, std::move(e));
  }

  /// fail(), unless another thread has already taken t out of the table to finish it.
  bool fail_if_pending(TaskState& t, std::exception_ptr e) {
    {
      std::lock_guard lock(tasks_mu_);
      if (!pending_.erase(t.id)) return false;
    }
    set_failed(t, std::move(e));
    return true;
  }

  static void set_failed(TaskState& t, std::exception_ptr e) {
    t.failure = std::move(e);
    t.finished_ns = now_ns();
    t.done.store(true, std::memory_order_release);
  }

  /// Once per kHealthPeriodNs while tasks are pending: tasks of engines that died (or were replaced)
  /// fail with engine_error, load-balanced tasks they held run again elsewhere or fail, deadlines
  /// pass, and tasks nobody can ever answer fail.
  void check_health() {
    next_health_ns_ = coarse_now_ns() + kHealthPeriodNs;
    std::vector<Task> tasks;
    {
      std::lock_guard lock(tasks_mu_);
      tasks.reserve(pending_.size());
      pending_.for_each([&](const Task& t) { tasks.push_back(t); });
    }
    if (tasks.empty()) return;
    if (std::string why = t_->damage(); !why.empty()) [[unlikely]] {
      // Nothing the segment says can be trusted: fail every task now rather than wait for answers.
      const auto err = std::make_exception_ptr(connection_error(why));
      for (auto& t : tasks)
        if (!t->is_done()) fail(*t, err);
      return;
    }
    const EngineSurvey survey = survey_engines();
    bool any_balanced = false;
    for (auto& t : tasks) any_balanced |= t->balanced && t->queued;
    if (any_balanced) check_deadlines(tasks);
    if (!survey.any_gone) return;
    const ClaimsAtDeath claims = recover_balanced_slots(survey);
    for (auto& t : tasks) {
      if (t->is_done()) continue;
      if (!t->balanced) fail_if_engine_gone(*t, survey);
      else if (t->queued) rerun_or_fail_lost(*t, claims, survey);
    }
    for (std::uint32_t e = 0; e < survey.health.size(); ++e)
      if (survey.gone[e]) {
        death_done_[e] = survey.dead[e];
        seen_gen_[e] = survey.health[e].generation;
      }
    fail_orphaned(tasks, survey.dead);
  }

  /// Every engine's health as the transport reports it, with the launcher's grace for recording a
  /// death. gone: dead, or replaced by a new incarnation since the last survey.
  struct EngineSurvey {
    std::vector<EngineHealth> health;
    std::vector<std::uint8_t> dead, gone;
    bool any_gone = false;
  };
  EngineSurvey survey_engines() {
    const std::uint32_t n = t_->engine_count();
    EngineSurvey s{std::vector<EngineHealth>(n), std::vector<std::uint8_t>(n, 0), std::vector<std::uint8_t>(n, 0)};
    for (std::uint32_t e = 0; e < n; ++e) {
      s.health[e] = t_->health(e);
      if (!s.health[e].alive) {
        // The launcher records the killing signal when it reaps; give it a moment to do so.
        const auto [it, fresh] = grace_.emplace(e, now_ns());
        s.dead[e] = s.health[e].signal != 0 || now_ns() - it->second > 100'000'000;
      } else {
        grace_.erase(e);
      }
      s.gone[e] = s.dead[e] || s.health[e].generation != seen_gen_[e];
      s.any_gone |= s.gone[e] != 0;
    }
    return s;
  }

  /// The load-balanced slots that departed engines held (lost) and that live ones hold (live), and
  /// how far each queue has been taken, read when the departures were noticed.
  struct ClaimsAtDeath {
    struct Claim {
      std::uint32_t engine, queue;
      std::uint64_t pos;
    };
    std::vector<Claim> lost, live;
    std::vector<std::uint64_t> taken;
    /// Whether the slot a departed engine held is now a live engine's (it was freed and reused).
    bool reused(const Claim& c) const noexcept {
      for (const auto& l : live)
        if (l.queue == c.queue && l.pos == c.pos) return true;
      return false;
    }
  };

  /// Reads who holds which load-balanced slot, drains what arrived, and frees the slots that departed
  /// engines took and never gave back.
  ClaimsAtDeath recover_balanced_slots(const EngineSurvey& survey) {
    // Read the claims before draining: a live engine publishes its completion before it moves its
    // claim on.
    ClaimsAtDeath c;
    for (std::uint32_t e = 0; e < survey.gone.size(); ++e) {
      std::uint32_t q;
      std::uint64_t p;
      if (survey.gone[e] && !death_done_[e] && t_->balanced_claim(e, q, p, true)) c.lost.push_back({e, q, p});
      else if (!survey.gone[e] && t_->balanced_claim(e, q, p)) c.live.push_back({e, q, p});
    }
    c.taken.resize(kLbQueues);
    for (std::uint32_t q = 0; q < kLbQueues; ++q) c.taken[q] = t_->balanced_taken(q);
    drain();  // completions posted just before a death still count
    for (const auto& l : c.lost)
      if (!c.reused(l) && l.pos < c.taken[l.queue]) t_->release_balanced(l.queue, l.pos);
    return c;
  }

  /// A direct task fails when its engine died or was replaced since it was sent.
  void fail_if_engine_gone(TaskState& t, const EngineSurvey& survey) {
    const std::uint32_t e = t.engine;
    const auto& h = survey.health[e];
    if (survey.dead[e] || h.generation != t.generation)
      fail(t, death_of(e, t.generation, h, death_detail(h, survey.dead[e])));
  }

  /// A load-balanced task whose engine died while running it: sent again while retries are left
  /// (LoadBalancedView::retries), else failed with engine_error naming that engine.
  void rerun_or_fail_lost(TaskState& t, const ClaimsAtDeath& claims, const EngineSurvey& survey) {
    for (const auto& c : claims.lost) {
      if (c.queue != t.queue || c.pos != t.pos || c.pos >= claims.taken[c.queue] || claims.reused(c)) continue;
      if (t.retries_left > 0) {
        --t.retries_left;
        send_balanced(t, t.extras->record, true);  // run it again elsewhere (submit_balanced kept the record)
      } else {
        t.engine = c.engine;  // metadata().engine_id names it, as the error does
        fail(t, death_of(c.engine, seen_gen_[c.engine], survey.health[c.engine],
                         "it was running this load-balanced task" + death_detail(survey.health[c.engine], true, "; ")));
      }
    }
  }

  /// The error of a task sent to incarnation `gen` of engine e: it names that incarnation's pid and the
  /// signal that killed it even when the launcher has replaced it since (h then describes the replacement).
  static std::exception_ptr death_of(std::uint32_t e, std::uint32_t gen, const EngineHealth& h, const std::string& detail = {}) {
    if (h.generation != gen && h.last_generation == gen)
      return std::make_exception_ptr(engine_error(int(e), h.last_pid, h.last_signal, detail));
    return std::make_exception_ptr(engine_error(int(e), h.pid, h.signal, detail));
  }

  /// What to say about an engine's death: its stack at the crash, symbolized once per death.
  std::string death_detail(const EngineHealth& h, bool dead, const char* lead = "") {
    if (!dead) return "it was restarted";
    if (h.crash.empty()) return "";
    auto it = crash_text_.find(h.pid);
    if (it == crash_text_.end()) it = crash_text_.emplace(h.pid, "stack at the crash:\n" + symbolize_report(h.crash)).first;
    return lead + it->second;
  }

  /// Load-balanced tasks still queued past their deadline never start: abort them with timeout_error.
  void check_deadlines(const std::vector<Task>& tasks) {
    const std::uint64_t now = now_ns();
    for (auto& t : tasks)
      if (t->balanced && t->queued && t->deadline_ns && now > t->deadline_ns && !t->is_done() && t_->cancel_balanced(t->queue, t->pos))
        fail(*t, std::make_exception_ptr(timeout_error("task " + std::to_string(t->id) + " did not start within its timeout (LoadBalancedView::timeout)")));
  }

  /// Queued load-balanced tasks whose every allowed engine is dead (and not restarted) can never run.
  void fail_orphaned(const std::vector<Task>& tasks, const std::vector<std::uint8_t>& dead) {
    for (auto& t : tasks) {
      if (!t->balanced || !t->queued || t->is_done()) continue;
      const std::uint64_t mask = t_->balanced_mask(t->queue);
      bool any_alive = false;
      for (std::uint32_t e = 0; e < dead.size(); ++e)
        if ((e >= 64 || mask == ~0ull || ((mask >> e) & 1)) && !dead[e]) any_alive = true;
      if (!any_alive && t_->cancel_balanced(t->queue, t->pos))
        fail(*t, std::make_exception_ptr(engine_error(-1, 0, 0, "every engine this load-balanced task may run on is dead")));
    }
  }

  std::unique_ptr<Transport> t_;
  std::vector<SpinLock> send_mu_;  // one per engine's command ring (one producer at a time)
  std::mutex lb_mu_[kLbQueues];
  SpinLock poll_mu_;   // held while draining, and while sleeping for completions: only ever try-locked
  SpinLock tasks_mu_;  // guards pending_ and deferred_: short sections, no blocking inside
  PendingTasks pending_;
  std::vector<Task> deferred_;
  std::atomic<bool> has_deferred_{false};  // !deferred_.empty(), written under tasks_mu_, read without it
  std::atomic<std::uint64_t> next_id_{1};
  std::uint64_t next_health_ns_ = 0;
  std::unordered_map<std::uint32_t, std::uint64_t> grace_;
  std::vector<std::uint32_t> seen_gen_;
  std::vector<std::uint8_t> death_done_;
  std::unordered_map<int, std::string> crash_text_;
};

}  // namespace cadre::detail
