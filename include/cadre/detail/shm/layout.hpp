// cadre/detail/shm/layout.hpp — every type that lives in the shared segment, in one place so the layout rules are visible together.
//
// Rules: standard-layout and trivially copyable (checked below); offsets from the segment base, never
// pointers; anything a dying process may be writing is one lock-free word, so a survivor can always
// reclaim it. Segment map (all offsets 64-byte aligned):
//
//   SegmentHeader | EngineSlot[engines] | ClientSlot[kMaxClients] | rings | LbQueue[kMaxClients][kLbQueues]
//   | PageEntry[pages] | heap pages
//
// Rings: for each engine e and client slot c, one command ring (c → e) and one completion ring (e → c).
// Every ring is single-producer single-consumer: threads of one client process serialise on a
// process-local mutex, so no lock shared between processes exists anywhere. The load-balanced queues
// are the exception that needs several consumers: each client has kLbQueues bounded MPMC queues
// (Vyukov's sequence-per-slot design, one producer) from which free engines claim tasks.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace cadre::detail {

inline constexpr std::uint64_t kMagic = 0x6361'6472'6531'7367ull;  // "cadre1sg"
inline constexpr std::uint32_t kLayoutVersion = 11;
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::uint32_t kMaxClients = 4;
inline constexpr std::uint32_t kMaxEngines = 256;
inline constexpr std::uint32_t kRingSlots = 256;       // per ring, a power of two
inline constexpr std::size_t kPageSize = 64 * 1024;    // heap allocation granule
inline constexpr std::size_t kInlineBytes = 192;       // payload carried inside a ring slot
inline constexpr std::uint32_t kLbQueues = 4;          // load-balanced queues per client (one per target set)
inline constexpr std::uint32_t kLbSlots = 512;         // per load-balanced queue, a power of two

/// Lifecycle of the segment, in SegmentHeader::state.
enum class SegmentState : std::uint32_t { initialising = 0, ready = 1, stopping = 2 };

/// What a process found damaged in the segment, in SegmentHeader::damaged.
enum class Damage : std::uint32_t { none = 0, header = 1, engine_table = 2, rings = 3 };

/// Lifecycle of an engine, in EngineSlot::state.
enum class EngineState : std::uint32_t { empty = 0, starting = 1, idle = 2, busy = 3, dead = 4, stopped = 5 };

inline const char* to_string(EngineState s) noexcept {
  switch (s) {
    case EngineState::empty: return "empty";
    case EngineState::starting: return "starting";
    case EngineState::idle: return "idle";
    case EngineState::busy: return "busy";
    case EngineState::dead: return "dead";
    case EngineState::stopped: return "stopped";
  }
  return "?";
}

struct alignas(kCacheLine) SegmentHeader {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t engine_count;
  std::uint64_t segment_size;
  std::int32_t creator_pid;   // the launcher: it spawns, reaps and restarts engines
  std::uint32_t creator_uid;
  std::uint64_t engines_off, clients_off, rings_off, lbq_off, pages_off, heap_off;
  std::uint64_t heap_pages;
  std::uint32_t cpus;               // CPUs of the machine, for the spin policy
  std::uint32_t threads_per_engine;
  std::uint8_t engine_build_id[32];  // build-id of the engines' executable
  std::uint32_t engine_build_id_len;
  std::uint32_t log_to_files;        // 1: engine output in log_dir/engine-N.log
  char engine_path[512];
  char log_dir[512];
  // header_checksum() of everything above, set at creation: a process that attached checks it against
  // the value it read then (Segment::damage), so a header overwritten later is noticed, not trusted.
  std::uint64_t checksum;
  // Written after creation:
  alignas(kCacheLine) std::atomic<std::uint32_t> state;  // SegmentState; release-store of ready pairs with open()'s acquire
  std::atomic<std::uint32_t> stop_request;               // futex word the launcher sleeps on
  // Damage: what a process found damaged (0: nothing), the first finding kept. The launcher stops the
  // cluster once it sees it. Its CAS (Segment::report_damage) pairs with the acquire-load in
  // Segment::damage(), which clients, engines and the launcher check now and then.
  std::atomic<std::uint32_t> damaged;
  std::atomic<std::uint64_t> committed_pages;            // heap pages backed by posix_fallocate
  std::atomic<std::uint64_t> used_pages;                 // statistics only
  alignas(kCacheLine) std::atomic<std::uint32_t> runnable;  // processes not asleep in a futex: spin only if <= cpus
};

/// A checksum (FNV-1a over 64-bit words) of the part of a header that never changes after creation:
/// everything before `checksum`. Read through a copy, since another process may be (wrongly) writing it
/// meanwhile. ~150 multiplications: cheap for a periodic check, never computed per record.
inline std::uint64_t header_checksum(const SegmentHeader& h) noexcept {
  constexpr std::size_t n = offsetof(SegmentHeader, checksum) / sizeof(std::uint64_t);
  static_assert(offsetof(SegmentHeader, checksum) % sizeof(std::uint64_t) == 0, "the checksummed part is whole words");
  std::uint64_t words[n];
  std::memcpy(words, &h, sizeof words);
  std::uint64_t x = 0xcbf2'9ce4'8422'2325ull;
  for (const std::uint64_t w : words) x = (x ^ w) * 0x100'0000'01b3ull;
  return x ^ (x >> 29);
}

struct alignas(kCacheLine) EngineSlot {
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint32_t> state;        // EngineState
  std::atomic<std::uint32_t> generation;   // bumped on each (re)start; futures of an older generation fail
  std::atomic<std::int32_t> exit_signal;   // set by the launcher when it reaps the engine
  std::atomic<std::int32_t> exit_code;
  // The last incarnation the launcher reaped: its pid, the signal that killed it (0: it exited) and its
  // generation, written before a replacement is spawned and kept while it runs, so that the error of a
  // task sent to the dead incarnation names it rather than the replacement.
  std::atomic<std::int32_t> last_pid;
  std::atomic<std::int32_t> last_signal;
  std::atomic<std::uint32_t> last_generation;
  // What the engine writes for every task lives on its own cache lines from here: a client reading the
  // fields above before each send (health) then finds them in its cache, not in the engine's.
  alignas(kCacheLine) std::atomic<std::uint32_t> counted_runnable;  // 1 while counted in SegmentHeader::runnable
  std::atomic<std::uint64_t> heartbeat_ns;
  std::atomic<std::uint64_t> tasks_done;
  std::atomic<std::uint64_t> current_task;      // task id being run, 0 when idle (state stays idle: see engine_state)
  std::atomic<std::uint32_t> current_client;    // the client slot it belongs to
  std::atomic<std::uint32_t> abort_client;      // a client asks to interrupt (abort_client, abort_task)...
  std::atomic<std::uint64_t> abort_task;        // ...then sends SIGUSR2; the engine checks it is still running it
  // The load-balanced slot this engine is claiming or running (lb_claim_word), 0 when none. Written
  // before the claim, so a client can always tell which engine held a task that died with it.
  std::atomic<std::uint64_t> lb_claim;
  std::atomic<std::uint64_t> dead_claim;  // lb_claim of the last incarnation, saved by the launcher when it reaped it
  std::atomic<std::uint64_t> crash_task;  // the task running when the crash report was written
  // 1 + the client slot this engine is posting a completion to, or claiming a load-balanced task of
  // (from before its claim until it has taken the task's block), 0 when none: whoever retires a client
  // slot waits for it to clear, so no completion of the old client lands in the rings it emptied and no
  // block of the old client is taken or freed after the slot's blocks were reclaimed.
  std::atomic<std::uint32_t> completing;
  char crash[2048];                       // the crashing engine's stack, "module+0xoffset" lines (crash_report.hpp)
  // The engine's doorbell: clients bump it after publishing a command if the engine sleeps.
  alignas(kCacheLine) std::atomic<std::uint32_t> doorbell;
  std::atomic<std::uint32_t> sleepers;
  std::atomic<std::uint32_t> wake_pending;  // 1: a client rang and the engine has not gone to sleep since
  std::atomic<std::uint64_t> rung_ns;       // when a client last woke it (monotonic ns): tunes its spin
};

/// An engine's state as users see it: busy while it runs a task. The engine does not store busy and
/// idle in `state` for every task (that line is read by clients before each send); it sets current_task.
/// A value no cadre writes (a damaged segment) reads as empty.
inline EngineState engine_state(const EngineSlot& s) noexcept {
  const std::uint32_t raw = s.state.load(std::memory_order_acquire);
  if (raw > std::uint32_t(EngineState::stopped)) return EngineState::empty;
  const auto st = EngineState(raw);
  return st == EngineState::idle && s.current_task.load(std::memory_order_acquire) != 0 ? EngineState::busy : st;
}

struct alignas(kCacheLine) ClientSlot {
  // 0: free; claimed by CAS, released by store. Negative: -(pid) of a process that is retiring the slot
  // (Segment::retire_client): not free yet, and no client of it is served any more.
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint32_t> generation;    // bumped on each claim
  std::atomic<std::uint32_t> counted_runnable;
  alignas(kCacheLine) std::atomic<std::uint32_t> doorbell;  // engines bump it after publishing a completion
  std::atomic<std::uint32_t> sleepers;
  std::atomic<std::uint32_t> wake_pending;  // 1: an engine rang and the client has not gone to sleep since
  std::atomic<std::uint64_t> rung_ns;       // when an engine last woke it (monotonic ns): tunes its spin
};

/// Kinds of records in ring slots.
enum class RecordKind : std::uint16_t {
  apply = 1,     // call a function (invoker + callable + args), result in the completion
  push = 2,      // set name = value
  pull = 3,      // return the value of name
  erase = 4,     // remove name
  scatter_view = 5,  // set name = a slice of a shared block (no copy)
  shutdown = 6,
  names = 7,     // list namespace names
  completion = 100,
};

/// Completion status, in RingSlot::status.
enum class Status : std::uint32_t {
  ok = 0, remote_error = 1, name_error = 2, type_error = 3, function_error = 4, capacity_error = 5,
  decode_error = 6, aborted = 7, timeout = 8,
};

/// Completion flag: the payload ends with the task's captured output (see wire.hpp, output trailer).
inline constexpr std::uint16_t kHasOutput = 0x8000;

/// One fixed-size ring record. The payload is inline (len bytes of data) or, when block != 0, in a heap
/// block at that offset. `data` starts 64-byte aligned so values read in place are aligned.
struct alignas(kCacheLine) RingSlot {
  // Ring records only (a load-balanced slot has LbSlot::seq): position + 1 once the record for that
  // position is complete. The consumer polls this word, on the line it reads next anyway (see ring.hpp).
  std::atomic<std::uint64_t> seq;
  std::uint64_t task_id;
  std::uint16_t kind;        // RecordKind
  std::uint16_t flags;       // completions: kHasOutput | length of an inline type head (split payload, see wire.hpp)
  // Completions: the task's Status. Commands: ok, or aborted once the client cancels the record before
  // the engine starts it (RingProducer::cancel; pairs with the engine's load after it stores current_task).
  std::atomic<std::uint32_t> status;
  std::uint32_t len;         // bytes of payload (inline or in the block)
  std::uint32_t aux;         // kind-specific: name length for push/pull
  std::uint64_t block;       // offset of a heap block holding the payload, 0 if inline
  std::uint64_t started_ns;  // completions: when the engine started / finished the task
  std::uint64_t finished_ns;
  std::uint32_t engine_gen;  // commands: the engine incarnation it is for; completions: the one that ran it
  std::uint32_t client_gen;  // the client slot's generation it belongs to
  alignas(kCacheLine) std::byte data[kInlineBytes];
};

/// States of a load-balanced slot, in LbSlot::state.
enum class LbState : std::uint32_t { queued = 1, running = 2, cancelled = 3 };

/// One entry of a load-balanced queue: Vyukov's sequence word, a state the client and the claiming
/// engine race on by CAS (abort vs. start), and the record. The queue's protocol is in lb_queue.hpp.
struct alignas(kCacheLine) LbSlot {
  std::atomic<std::uint64_t> seq;     // == pos: free for the producer; == pos + 1: ready for a consumer
  std::atomic<std::uint32_t> state;   // LbState
  RingSlot record;
};

struct alignas(kCacheLine) LbQueue {
  alignas(kCacheLine) std::atomic<std::uint64_t> head;  // the producing client's next position
  alignas(kCacheLine) std::atomic<std::uint64_t> tail;  // engines claim position tail by CAS
  alignas(kCacheLine) std::atomic<std::uint64_t> mask;  // engines (bit e, e < 64) allowed to run its tasks; 0: unused
  LbSlot slots[kLbSlots];
};

/// EngineSlot::lb_claim for (client c, queue q, position pos).
inline constexpr std::uint64_t lb_claim_word(std::uint32_t c, std::uint32_t q, std::uint64_t pos) noexcept {
  return (std::uint64_t(c + 1) << 60) | (std::uint64_t(q) << 56) | (pos & ((1ull << 56) - 1));
}

/// Producer and consumer indices of one SPSC ring, each on its own cache line.
struct RingIndices {
  alignas(kCacheLine) std::atomic<std::uint64_t> head;  // written by the producer only
  alignas(kCacheLine) std::atomic<std::uint64_t> tail;  // written by the consumer only
};

struct alignas(kCacheLine) RingStorage {
  RingIndices idx;
  RingSlot slots[kRingSlots];
};

/// Ownership of one heap page. A block is a run of pages; its first page's entry holds the run length.
struct PageEntry {
  std::atomic<std::uint32_t> owner;  // 0: free; else an owner tag (see tags below)
  std::uint32_t run;                 // pages in the run, on the run's first page
};

/// At the start of every heap block.
struct alignas(kCacheLine) BlockHeader {
  std::uint64_t magic;
  std::uint64_t pages;
  std::uint64_t bytes;  // usable bytes after the header
  std::atomic<std::uint64_t> refs;  // high 32 bits: namespace references; low 32: pins (readers in flight)
};

inline constexpr std::uint64_t kBlockMagic = 0x626c'6f63'6b30'3031ull;
inline constexpr std::uint64_t kNsRef = 1ull << 32;
inline constexpr std::uint64_t kPin = 1;

// ---- owner tags of heap blocks (PageEntry::owner) --------------------------------------------
// Every tag is here, in ranges that must never meet: a dead process's blocks are freed by scanning
// for its tag (Segment::reclaim), so two owners sharing a tag lose each other's blocks. 0 is a free
// page.

/// Namespace values of engine e: allocated by the engine, freed by their last reference, or by the
/// launcher's reclaim when the engine dies.
inline constexpr std::uint32_t engine_tag(std::uint32_t engine) noexcept { return 1 + engine; }
/// Blocks client slot c is filling, results engines post to it, and its load-balanced payloads until
/// an engine takes them over: freed by their last reference, or by the reclaim of a dead client
/// (Segment::retire_client), pins included.
inline constexpr std::uint32_t client_tag(std::uint32_t slot) noexcept { return 0x10000 + slot; }
/// Reserved for blocks of the launcher itself: nothing allocates one, and no reclaim frees one.
inline constexpr std::uint32_t kLauncherTag = 0x20000;
/// A block a client filled and handed to engine e with a record (from the moment it checked that the
/// engine lives), or a load-balanced payload e took over: freed by its last reference, or reclaimed by
/// the launcher with the engine's own blocks. Until the hand-over it is the client's (client_tag), so
/// an engine dying while the client fills it cannot take it away.
inline constexpr std::uint32_t transit_tag(std::uint32_t engine) noexcept { return 0x30000 + engine; }
/// The first page of a block that reclaim() is deciding about (nobody else may take it meanwhile);
/// reclaim() then frees it or gives it back its tag.
inline constexpr std::uint32_t kReclaimingTag = 0x40000;
/// SharedVector arrays: allocated by a client, freed by reference count only (engines may hold slices
/// of them after the client is gone), never by a reclaim.
inline constexpr std::uint32_t kSharedTag = 0x50000;

/// The tags an owner uses, first to last.
struct TagRange {
  std::uint32_t first, last;
};
/// Whether no tag is in both ranges.
inline constexpr bool tags_disjoint(TagRange a, TagRange b) noexcept { return a.last < b.first || b.last < a.first; }

inline constexpr TagRange kEngineTags{engine_tag(0), engine_tag(kMaxEngines - 1)};
inline constexpr TagRange kClientTags{client_tag(0), client_tag(kMaxClients - 1)};
inline constexpr TagRange kLauncherTags{kLauncherTag, kLauncherTag};
inline constexpr TagRange kTransitTags{transit_tag(0), transit_tag(kMaxEngines - 1)};
inline constexpr TagRange kReclaimingTags{kReclaimingTag, kReclaimingTag};
inline constexpr TagRange kSharedTags{kSharedTag, kSharedTag};
static_assert(kEngineTags.first != 0 && kClientTags.first != 0 && kLauncherTags.first != 0 &&
                  kTransitTags.first != 0 && kReclaimingTags.first != 0 && kSharedTags.first != 0,
              "tag 0 marks a free page: no owner may use it");
static_assert(tags_disjoint(kEngineTags, kClientTags) && tags_disjoint(kEngineTags, kLauncherTags) &&
                  tags_disjoint(kEngineTags, kTransitTags) && tags_disjoint(kEngineTags, kReclaimingTags) &&
                  tags_disjoint(kEngineTags, kSharedTags),
              "engine tags overlap another owner's");
static_assert(tags_disjoint(kClientTags, kLauncherTags) && tags_disjoint(kClientTags, kTransitTags) &&
                  tags_disjoint(kClientTags, kReclaimingTags) && tags_disjoint(kClientTags, kSharedTags),
              "client tags overlap another owner's");
static_assert(tags_disjoint(kLauncherTags, kTransitTags) && tags_disjoint(kLauncherTags, kReclaimingTags) &&
                  tags_disjoint(kLauncherTags, kSharedTags),
              "the launcher's tag overlaps another owner's");
static_assert(tags_disjoint(kTransitTags, kReclaimingTags) && tags_disjoint(kTransitTags, kSharedTags),
              "transit tags overlap another owner's");
static_assert(tags_disjoint(kReclaimingTags, kSharedTags), "the reclaiming tag is the shared tag");

#define CADRE_SHARED_TYPE(T)                                                                        \
  static_assert(std::is_standard_layout_v<T>, #T " lives in shared memory: it must be standard-layout"); \
  static_assert(alignof(T) <= kCacheLine, #T ": over-aligned types cannot be placed in the segment")
CADRE_SHARED_TYPE(SegmentHeader);
CADRE_SHARED_TYPE(EngineSlot);
CADRE_SHARED_TYPE(ClientSlot);
CADRE_SHARED_TYPE(RingSlot);
CADRE_SHARED_TYPE(RingStorage);
CADRE_SHARED_TYPE(PageEntry);
CADRE_SHARED_TYPE(LbSlot);
CADRE_SHARED_TYPE(LbQueue);
CADRE_SHARED_TYPE(BlockHeader);
#undef CADRE_SHARED_TYPE
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free,
              "shared words must be lock-free so a process dying mid-update cannot hold a lock");
static_assert(sizeof(RingSlot) == 256, "a ring slot is four cache lines: header line plus 192 inline bytes");
static_assert(offsetof(RingSlot, engine_gen) + sizeof(std::uint32_t) * 2 <= kCacheLine, "a ring record's header fits its first line");
static_assert(offsetof(RingSlot, data) % kCacheLine == 0, "inline payloads start cache-line aligned");
static_assert(offsetof(RingIndices, tail) - offsetof(RingIndices, head) >= kCacheLine,
              "head and tail must be a cache line apart to prevent false sharing");
static_assert((kRingSlots & (kRingSlots - 1)) == 0, "ring capacity must be a power of two");
static_assert((kLbSlots & (kLbSlots - 1)) == 0, "load-balanced queue capacity must be a power of two");
static_assert(sizeof(BlockHeader) == kCacheLine, "block data starts one cache line into the block");

}  // namespace cadre::detail
