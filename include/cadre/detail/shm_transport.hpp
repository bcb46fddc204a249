// cadre/detail/shm_transport.hpp — Transport over one shared segment: a client slot, SPSC rings, futex doorbells.
#pragma once

#include <cadre/detail/module_ref.hpp>
#include <cadre/detail/ring.hpp>
#include <cadre/detail/segment.hpp>
#include <cadre/detail/transport.hpp>
#include <cadre/detail/waiter.hpp>

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

namespace cadre::detail {

class ShmTransport final : public Transport {
 public:
  /// Attaches to the cluster's segment and claims a client slot. Throws connection_error.
  explicit ShmTransport(std::string_view cluster) : seg_(std::make_shared<Segment>(Segment::open(cluster))) {
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
    }
    BuildId engine_id;
    engine_id.len = std::uint8_t(std::min<std::uint32_t>(h.engine_build_id_len, 32));
    std::memcpy(engine_id.bytes.data(), h.engine_build_id, engine_id.len);
    same_program_ = engine_id.len > 0 && engine_id == main_build_id();
    token_ = RunnableToken(&seg_->header(), &seg_->client(slot_).counted_runnable);
  }

  ~ShmTransport() override {
    for (int fd : pidfds_)
      if (fd >= 0) ::close(fd);
    token_.set(false);
    // Results that were never read still hold pins on blocks tagged with this slot: reclaim them.
    for (std::uint32_t e = 0; e < consumers_.size(); ++e)
      while (const RingSlot* s = consumers_[e].peek()) {
        if (s->block) release_pin(s->block);
        consumers_[e].release();
      }
    seg_->client(slot_).pid.store(0, std::memory_order_release);
  }

  std::uint32_t engine_count() const override { return std::uint32_t(producers_.size()); }
  bool engines_run_this_program() const override { return same_program_; }

  OutBlock allocate(std::uint32_t e, std::size_t bytes) override {
    const std::uint64_t off = seg_->alloc_block(bytes, engine_tag(e), kNsRef);
    return {off, {seg_->block_data(off), bytes}};
  }

  void discard(const OutBlock& b) noexcept override {
    try {
      seg_->release(b.handle, kNsRef);
    } catch (...) {
    }
  }

  bool try_send(std::uint32_t e, std::uint64_t task, RecordKind kind, std::uint32_t aux, std::span<const std::byte> head,
                const OutBlock* body) override {
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
      return false;
    }
    s->task_id = task;
    s->kind = std::uint16_t(kind);
    s->status = 0;
    s->aux = aux;
    s->reserved[0] = seg_->engine(e).generation.load(std::memory_order_acquire);
    s->reserved[1] = generation_;
    if (body) {
      s->block = body->handle;
      s->len = std::uint32_t(body->bytes.size());
      if (!head.empty()) std::memcpy(s->data, head.data(), std::min(head.size(), kInlineBytes));
      s->aux = body == &spill ? aux : std::uint32_t(head.size());
    } else {
      s->block = 0;
      s->len = std::uint32_t(head.size());
      if (!head.empty()) std::memcpy(s->data, head.data(), head.size());
    }
    producers_[e].publish();
    Doorbell{&seg_->engine(e).doorbell, &seg_->engine(e).sleepers}.ring();
    return true;
  }

  std::size_t poll(const std::function<void(Completion&)>& f) override {
    std::size_t n = 0;
    for (std::uint32_t e = 0; e < consumers_.size(); ++e) {
      while (const RingSlot* s = consumers_[e].peek()) {
        Completion c;
        c.engine = e;
        c.task_id = s->task_id;
        c.status = Status(s->status);
        c.started_ns = s->started_ns;
        c.finished_ns = s->finished_ns;
        const std::uint64_t block = s->block;
        const std::uint32_t len = s->len, at = s->aux, head_len = s->flags;
        const bool mine = s->reserved[1] == generation_;
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
            c.hold = std::shared_ptr<void>(nullptr, [seg, block](void*) {
              try {
                seg->release(block, kPin);
              } catch (...) {
              }
            });
          } else {
            if (len > kInlineBytes) throw decode_error("completion payload exceeds its slot");
            c.bytes = {s->data, len};
          }
        } catch (const decode_error& err) {
          c.status = Status::decode_error;
          c.head = {};
          c.hold.reset();
          error_.assign(err.what());
          c.bytes = {reinterpret_cast<const std::byte*>(error_.data()), error_.size()};
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
    wait_for(Doorbell{&me.doorbell, &me.sleepers}, token_,
             [&] {
               for (auto& c : consumers_)
                 if (c.has_data()) return true;
               return false;
             },
             timeout_ns);
  }

  EngineHealth health(std::uint32_t e, bool probe = true) override {
    const EngineSlot& s = seg_->engine(e);
    EngineHealth h;
    h.pid = s.pid.load(std::memory_order_acquire);
    h.generation = s.generation.load(std::memory_order_acquire);
    const auto state = EngineState(s.state.load(std::memory_order_acquire));
    if (state == EngineState::dead || state == EngineState::stopped) {
      h.alive = false;
      h.signal = s.exit_signal.load(std::memory_order_relaxed);
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
        if (pass == 1 && cur != 0 && !process_alive(cur)) {
          // A client that died without detaching: take its slot over and free what it owned.
          if (!s.pid.compare_exchange_strong(cur, 0)) continue;
          if (s.counted_runnable.exchange(0)) seg_->header().runnable.fetch_sub(1);
          seg_->reclaim(client_tag(c));
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
  std::string error_;
};

}  // namespace cadre::detail
