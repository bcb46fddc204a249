// cadre/detail/client/shm_transport.hpp — Transport over one shared segment: a client slot, SPSC rings, futex doorbells.
#pragma once

#include <cadre/detail/wire/module_ref.hpp>
#include <cadre/detail/shm/lb_queue.hpp>
#include <cadre/detail/shm/ring.hpp>
#include <cadre/detail/shm/segment.hpp>
#include <cadre/detail/client/transport.hpp>
#include <cadre/detail/shm/waiter.hpp>
#include <cadre/detail/wire/wire.hpp>

#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace cadre::detail {

/// A SharedVector's array: a heap block with its own owner tag, freed by reference count only (engines
/// may hold slices of it after the client is gone), never by the reclaim of a dead process.
class ShmRegion final : public SharedRegion {
 public:
  ShmRegion(std::shared_ptr<Segment> seg, std::size_t n) : seg_(std::move(seg)) {
    handle = seg_->alloc_block(n, kSharedTag, kNsRef);
    bytes = {seg_->block_data(handle), n};
    std::memset(bytes.data(), 0, n);
  }
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  ~ShmRegion() override {
    try {
      seg_->release(handle, kNsRef);
    } catch (...) {
    }
  }
  const void* memory_identity() const noexcept override { return seg_.get(); }
  std::string describe() const override { return "cluster '" + seg_->cluster() + "'"; }

 private:
  std::shared_ptr<Segment> seg_;
};

class ShmTransport final : public Transport {
 public:
  /// Attaches to the cluster's segment and claims a client slot. Throws connection_error.
  explicit ShmTransport(std::string_view cluster) : seg_(std::make_shared<Segment>(Segment::open(cluster))) {
    // A launcher that died without cleaning up leaves a segment whose engines are gone: every task
    // would fail with engine_error. Say so once, here, with the way out.
    const pid_t launcher = seg_->header().creator_pid;
    if (launcher > 0 && !process_alive(launcher))
      throw connection_error("cluster '" + std::string(cluster) + "' is stale: its launcher (pid " + std::to_string(launcher) +
                             ") is gone, and its engines with it; clean it up with `cadre stop --name " + std::string(cluster) +
                             "`, then start it again");
    claim_slot();
    const auto& h = seg_->header();
    const std::uint32_t n = h.engine_count;
    producers_.resize(n);
    consumers_.resize(n);
    pidfds_.assign(n, -1);
    pidfd_pids_.assign(n, 0);
    for (std::uint32_t e = 0; e < n; ++e) {
      producers_[e] = RingProducer(seg_->command_ring(e, slot_));
      consumers_[e] = RingConsumer(seg_->completion_ring(e, slot_));
      if (producers_[e].broken() || consumers_[e].broken()) {
        seg_->report_damage(Damage::rings);
        if (!seg_->retire_client(slot_, ::getpid(), false)) seg_->client(slot_).pid.store(0, std::memory_order_release);
        throw connection_error(damaged_segment_message(
            cluster, "the indices of the rings between engine " + std::to_string(e) + " and client slot " + std::to_string(slot_) +
                         " are out of range"));
      }
    }
    BuildId engine_id;
    engine_id.len = std::uint8_t(std::min<std::uint32_t>(h.engine_build_id_len, 32));
    std::memcpy(engine_id.bytes.data(), h.engine_build_id, engine_id.len);
    same_program_ = engine_id.len > 0 && engine_id == main_build_id();
    token_ = RunnableToken(&seg_->header(), &seg_->client(slot_).counted_runnable);
    for (std::uint32_t q = 0; q < kLbQueues; ++q) lb_head_[q] = lb_attach(*seg_->lb_queue(slot_, q));
  }

  ~ShmTransport() override {
    for (int fd : pidfds_)
      if (fd >= 0) ::close(fd);
    token_.set(false);
    // Results that were never read still hold pins: retire_client releases them (after engines still
    // posting to this slot are done) and frees the slot.
    if (!seg_->retire_client(slot_, ::getpid(), false)) seg_->client(slot_).pid.store(0, std::memory_order_release);
  }

  std::uint32_t engine_count() const override { return std::uint32_t(producers_.size()); }
  bool engines_run_this_program() const override { return same_program_; }

  OutBlock allocate(std::uint32_t, std::size_t bytes) override {
    // Ours while we fill it: if the engine dies meanwhile, the launcher's reclaim of its blocks must not
    // free it under our copy. try_send hands it over.
    const std::uint64_t off = seg_->alloc_block(bytes, client_tag(slot_), kNsRef);
    return {off, {seg_->block_data(off), bytes}};
  }

  void discard(const OutBlock& b) noexcept override {
    try {
      seg_->release(b.handle, kNsRef);
    } catch (...) {
    }
  }

  SendResult try_send(std::uint32_t e, std::uint64_t task, RecordKind kind, std::uint32_t aux, std::span<const std::byte> head,
                      const OutBlock* body, std::uint64_t& position) override {
    OutBlock spill;
    if (!body && head.size() > kInlineBytes) {
      // A record too big for a slot travels in a block of its own.
      spill = allocate(e, head.size());
      std::memcpy(spill.bytes.data(), head.data(), head.size());
      body = &spill;
      head = {};
    }
    RingSlot* s = producers_[e].try_claim();
    if (!s) {
      if (spill.handle) discard(spill);
      if (producers_[e].broken()) [[unlikely]] {
        seg_->report_damage(Damage::rings);
        return SendResult::broken;
      }
      return SendResult::full;
    }
    std::uint32_t generation;
    if (body) {
      if (!hand_over(e, body->handle, generation)) return SendResult::engine_gone;
    } else {
      generation = seg_->engine(e).generation.load(std::memory_order_acquire);
    }
    RecordHeader h{task, kind, Status::ok, std::uint32_t(head.size()), aux, 0, generation, generation_};
    if (body) {
      h.block = body->handle;
      h.len = std::uint32_t(body->bytes.size());
      h.aux = body == &spill ? aux : std::uint32_t(head.size());
    }
    write_record(*s, h, head);
    position = producers_[e].position();
    producers_[e].publish();
    if (doorbell_of(seg_->engine(e)).ring()) woke_engine_.store(true, std::memory_order_relaxed);
    return SendResult::sent;
  }

  std::size_t poll(CompletionSink f) override {
    std::size_t n = 0;
    for (std::uint32_t e = 0; e < consumers_.size(); ++e) {
      while (const RingSlot* s = consumers_[e].peek()) {
        Completion c;
        c.engine = e;
        c.task_id = s->task_id;
        c.status = Status(s->status.load(std::memory_order_relaxed));
        c.started_ns = s->started_ns;
        c.finished_ns = s->finished_ns;
        const std::uint64_t block = s->block;
        const std::uint32_t len = s->len, at = s->aux, head_len = s->flags & ~kHasOutput;
        const bool output = (s->flags & kHasOutput) != 0;
        const bool mine = s->client_gen == generation_;
        try {
          if (!mine) {
            if (block) release_pin(block);
          } else if (block) {
            if (head_len > kInlineBytes) throw decode_error("completion type head exceeds its slot");
            c.head = {s->data, head_len};
            const BlockHeader* b = seg_->block(block);
            if (std::uint64_t(at) + len > b->bytes) throw decode_error("completion payload exceeds its block");
            c.bytes = {seg_->block_data(block) + at, len};
            auto seg = seg_;
            // Non-null, so that holders can tell a held payload from an inline one.
            c.hold = std::shared_ptr<void>(static_cast<void*>(seg_->block_data(block)), [seg, block](void*) {
              try {
                seg->release(block, kPin);
              } catch (...) {
              }
            });
          } else {
            if (len > kInlineBytes) throw decode_error("completion payload exceeds its slot");
            c.bytes = {s->data, len};
          }
          if (mine && output) c.bytes = take_output_trailer(c.bytes, c.out, c.err);
        } catch (const decode_error& err) {
          c.status = Status::decode_error;
          c.head = {};
          c.hold.reset();
          error_.clear();
          Writer w(error_);
          put_strings(w, {err.what()});
          c.bytes = error_;
        }
        if (mine) {
          f(c);
          ++n;
        }
        consumers_[e].release();
      }
    }
    return n;
  }

  void wait(std::uint64_t timeout_ns) override {
    auto& me = seg_->client(slot_);
    wait_for(doorbell_of(me), token_,
             [&] {
               for (auto& c : consumers_)
                 if (c.has_data()) return true;
               return false;
             },
             timeout_ns, woke_engine_.exchange(false, std::memory_order_relaxed));
  }

  std::string damage() override {
    if (const char* why = seg_->damage()) return damaged_segment_message(seg_->cluster(), why);
    // Nobody else writes our slot while we hold it (a launcher retires it only once we are dead).
    const ClientSlot& me = seg_->client(slot_);
    if (me.pid.load(std::memory_order_relaxed) != ::getpid() || me.generation.load(std::memory_order_relaxed) != generation_)
      return damaged_segment_message(seg_->cluster(), "client slot " + std::to_string(slot_) + ", this client's, names another client");
    return {};
  }

  EngineHealth health(std::uint32_t e, bool probe = true) override {
    const EngineSlot& s = seg_->engine(e);
    EngineHealth h;
    h.pid = s.pid.load(std::memory_order_acquire);
    h.generation = s.generation.load(std::memory_order_acquire);
    // Written by the launcher before it bumped the generation read above.
    h.last_generation = s.last_generation.load(std::memory_order_acquire);
    h.last_pid = s.last_pid.load(std::memory_order_relaxed);
    h.last_signal = s.last_signal.load(std::memory_order_relaxed);
    const auto state = EngineState(s.state.load(std::memory_order_acquire));
    if (state == EngineState::dead || state == EngineState::stopped) {
      h.alive = false;
      h.signal = s.exit_signal.load(std::memory_order_relaxed);
      if (s.crash[0]) h.crash = std::string(s.crash, strnlen(s.crash, sizeof s.crash));
      return h;
    }
    if (probe && h.pid > 0) {
      if (pidfd_pids_[e] != h.pid) {
        if (pidfds_[e] >= 0) ::close(pidfds_[e]);
        pidfds_[e] = pidfd_open(h.pid);
        pidfd_pids_[e] = h.pid;
      }
      h.alive = pidfds_[e] >= 0 ? !pidfd_exited(pidfds_[e]) : process_alive(h.pid);
    }
    return h;
  }

  std::uint32_t balanced_queue(std::uint64_t engine_mask) override {
    const std::uint32_t q = lb_queue_for(seg_->lb_queues(slot_), lb_target_mask(engine_mask, engine_count()));
    if (q == kLbQueues)
      throw error("a client can use load-balanced views over at most " + std::to_string(kLbQueues) +
                  " different sets of engines; reuse views over the same engines");
    return q;
  }

  bool try_send_balanced(std::uint32_t q, std::uint64_t task, RecordKind kind, std::uint32_t aux, std::span<const std::byte> head,
                         std::uint64_t deadline_ns, std::uint64_t& pos) override {
    LbQueue& Q = *seg_->lb_queue(slot_, q);
    pos = lb_head_[q];
    if (!lb_try_reserve(Q, pos)) return false;  // full
    LbTask t{task, kind, aux, deadline_ns, generation_, 0, std::uint32_t(head.size())};
    if (head.size() > kInlineBytes) {
      // Any engine may take it: the block belongs to this client until an engine takes it over.
      t.block = seg_->alloc_block(head.size(), client_tag(slot_), kNsRef);
      std::memcpy(seg_->block_data(t.block), head.data(), head.size());
      head = {};
    }
    lb_publish(Q, pos, t, head);
    lb_head_[q] = pos + 1;
    wake_one(lb_mask(Q));
    return true;
  }

  bool cancel_balanced(std::uint32_t q, std::uint64_t pos) override { return lb_try_cancel(*seg_->lb_queue(slot_, q), pos); }

  void release_balanced(std::uint32_t q, std::uint64_t pos) override { lb_release_abandoned(*seg_->lb_queue(slot_, q), pos); }

  std::uint64_t balanced_taken(std::uint32_t q) override { return lb_taken(*seg_->lb_queue(slot_, q)); }
  std::uint64_t balanced_mask(std::uint32_t q) override { return lb_mask(*seg_->lb_queue(slot_, q)); }

  bool balanced_claim(std::uint32_t e, std::uint32_t& q, std::uint64_t& pos, bool dead) override {
    const EngineSlot& s = seg_->engine(e);
    std::uint64_t w = s.lb_claim.load(std::memory_order_acquire);
    if (dead) {
      // Reaped (and maybe replaced): the launcher moved the claim to dead_claim; lb_claim may already be
      // the replacement's. Not reaped yet (launcher gone too): lb_claim is still the dead engine's.
      const auto st = EngineState(s.state.load(std::memory_order_acquire));
      const std::uint64_t saved = s.dead_claim.load(std::memory_order_acquire);
      w = saved != 0 || !(st == EngineState::dead || st == EngineState::stopped || !process_alive(s.pid.load())) ? saved : w;
    }
    if (w == 0 || (w >> 60) != slot_ + 1) return false;
    q = std::uint32_t((w >> 56) & 15);
    pos = w & ((1ull << 56) - 1);
    return q < kLbQueues;  // a word no engine could have written is no claim
  }

  bool cancel_queued(std::uint32_t e, std::uint64_t position, std::uint64_t task) override {
    return producers_[e].cancel(position, task);
  }

  bool interrupt(std::uint32_t e, std::uint64_t task) override {
    EngineSlot& s = seg_->engine(e);
    s.abort_client.store(slot_, std::memory_order_relaxed);
    s.abort_task.store(task, std::memory_order_seq_cst);
    if (s.current_task.load(std::memory_order_seq_cst) != task || s.current_client.load() != slot_) return false;
    const pid_t pid = s.pid.load();
    return pid > 0 && ::kill(pid, SIGUSR2) == 0;  // an engine of this cluster; it checks the task is still current
  }

  EngineLoad load(std::uint32_t e) override {
    EngineLoad l;
    const EngineSlot& s = seg_->engine(e);
    l.done = s.tasks_done.load(std::memory_order_relaxed);
    l.running = engine_state(s) == EngineState::busy;
    for (std::uint32_t c = 0; c < kMaxClients; ++c) {
      const RingStorage* r = seg_->command_ring(e, c);
      // The consumer sees a record by its seq, so tail can pass a head that is about to be stored.
      const auto d = std::int64_t(r->idx.head.load(std::memory_order_relaxed) - r->idx.tail.load(std::memory_order_relaxed));
      l.queued += d > 0 ? std::uint64_t(d) : 0;
    }
    if (l.running && l.queued) --l.queued;  // the record being run is still in the ring
    return l;
  }

  std::shared_ptr<SharedRegion> allocate_shared(std::size_t bytes) override {
    return std::make_shared<ShmRegion>(seg_, bytes);
  }
  void retain_shared(const SharedRegion& r) override { seg_->retain(r.handle, kNsRef); }
  void release_shared(const SharedRegion& r) noexcept override {
    try {
      seg_->release(r.handle, kNsRef);
    } catch (...) {
    }
  }

  const void* memory_identity() const noexcept override { return seg_.get(); }

  std::string describe() const override { return "cluster '" + seg_->cluster() + "'"; }

  const std::shared_ptr<Segment>& segment() const noexcept { return seg_; }
  std::uint32_t slot() const noexcept { return slot_; }

 private:
  void claim_slot() {
    const pid_t me = ::getpid();
    for (int pass = 0; pass < 2; ++pass)
      for (std::uint32_t c = 0; c < kMaxClients; ++c) {
        auto& s = seg_->client(c);
        std::int32_t cur = s.pid.load();
        if (pass == 1 && cur != 0 && !Segment::slot_holder_alive(cur)) {
          // A client that died without detaching (or died retiring a dead one's slot): empty its rings,
          // free what it owned, and take the slot over.
          if (!seg_->retire_client(c, cur, true)) continue;
          cur = 0;
        }
        if (cur == 0 && s.pid.compare_exchange_strong(cur, me)) {
          slot_ = c;
          generation_ = s.generation.fetch_add(1, std::memory_order_acq_rel) + 1;
          return;
        }
      }
    throw connection_error(describe() + " already has " + std::to_string(kMaxClients) +
                           " clients attached; close one (each cadre::Client holds a slot until destroyed)");
  }

  /// Wakes one sleeping engine among those in mask (round robin), for one newly queued task.
  void wake_one(std::uint64_t mask) noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // publication before the sleepers read
    const std::uint32_t n = engine_count();
    for (std::uint32_t k = 0; k < n; ++k) {
      const std::uint32_t e = (next_wake_ + k) % n;
      if (e < 64 && mask != ~0ull && !((mask >> e) & 1)) continue;
      // An engine already rung is on its way: wake another sleeper instead, if there is one.
      if (doorbell_of(seg_->engine(e)).wake() == Doorbell::Woke::now) {
        next_wake_ = e + 1;
        return;
      }
    }
  }

  /// Gives a block we filled to engine e, unless e is dead: then it is freed (or left to the launcher,
  /// which reclaims the dead engine's blocks) and false is returned. Sets `generation` to the
  /// incarnation that owns it now, the one the record must name. If that incarnation dies before it
  /// reads the record, the launcher reclaims the block with the engine's own.
  bool hand_over(std::uint32_t e, std::uint64_t block, std::uint32_t& generation) {
    seg_->retag(block, transit_tag(e));
    // Pairs with the fence in Cluster::reap between marking the engine dead and reclaiming its blocks.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const EngineSlot& s = seg_->engine(e);
    const auto state = EngineState(s.state.load(std::memory_order_seq_cst));
    generation = s.generation.load(std::memory_order_seq_cst);
    if (state != EngineState::dead && state != EngineState::stopped) return true;
    // Reaped: take the block back unless the launcher's reclaim already has it, and free it.
    if (seg_->take_back(block, transit_tag(e), client_tag(slot_))) discard(OutBlock{block, {}});
    return false;
  }

  void release_pin(std::uint64_t block) noexcept {
    try {
      seg_->release(block, kPin);
    } catch (...) {
    }
  }

  std::shared_ptr<Segment> seg_;
  std::uint32_t slot_ = 0, generation_ = 0;
  bool same_program_ = false;
  std::vector<RingProducer> producers_;
  std::vector<RingConsumer> consumers_;
  std::vector<int> pidfds_;
  std::vector<int> pidfd_pids_;
  RunnableToken token_;
  std::atomic<bool> woke_engine_{false};  // a send woke a sleeping engine: wait() spins its whole budget
  std::vector<std::byte> error_;
  std::uint64_t lb_head_[kLbQueues] = {};
  std::uint32_t next_wake_ = 0;
};

}  // namespace cadre::detail
