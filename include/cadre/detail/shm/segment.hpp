// cadre/detail/shm/segment.hpp — one cluster's shared-memory segment: create/open/remove, the layout map, and the page heap.
//
// The segment is a Boost.Interprocess shared_memory_object (a /dev/shm file) mapped with mapped_region.
// We do not use managed_shared_memory: its allocator is guarded by a process-shared mutex that
// becomes unusable when its holder dies. Instead the heap is a table of page owners, claimed by CAS
// and released by a store, so a dead process's pages are reclaimed by scanning for its tag.
#pragma once

#include <cadre/detail/shm/layout.hpp>
#include <cadre/detail/shm/lb_queue.hpp>
#include <cadre/detail/shm/ring.hpp>
#include <cadre/detail/base/sys.hpp>
#include <cadre/errors.hpp>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <thread>

namespace cadre::detail {

namespace bip = boost::interprocess;

inline std::size_t align_up(std::size_t v, std::size_t a) noexcept { return (v + a - 1) / a * a; }

/// Human-readable byte count ("256 MiB").
inline std::string format_bytes(std::uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = double(b);
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

/// Throws argument_error unless name is 1..64 characters of [A-Za-z0-9_.-], not starting with '.';
/// the message says what is wrong with the name and which names are allowed.
inline void validate_cluster_name(std::string_view name) {
  auto ok = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; };
  auto shown = [](unsigned char c) {  // a character as a message can show it
    char buf[16];
    std::snprintf(buf, sizeof buf, std::isprint(c) ? "'%c'" : "byte 0x%02x", c);
    return std::string(buf);
  };
  std::string why;
  if (name.empty()) why = "it is empty";
  else if (name.size() > 64) why = "it is " + std::to_string(name.size()) + " characters long";
  else if (const auto bad = std::find_if_not(name.begin(), name.end(), ok); bad != name.end()) why = "it contains " + shown(*bad);
  else if (name[0] == '.') why = "it starts with '.'";
  else return;
  std::string quoted;
  for (unsigned char c : name.substr(0, 80)) quoted += std::isprint(c) ? std::string(1, char(c)) : "?";
  throw argument_error("invalid cluster name '" + quoted + (name.size() > 80 ? "...'" : "'") + ": " + why +
                       "; a cluster name is 1 to 64 characters from A-Z a-z 0-9 _ - . and does not start with '.'");
}

/// The /dev/shm name of a cluster's segment: per user, so two users' clusters never meet.
inline std::string shm_name(std::string_view cluster) {
  return "cadre-" + std::to_string(::geteuid()) + "-" + std::string(cluster);
}

/// The /dev/shm path of a cluster's segment.
inline std::string segment_path(std::string_view cluster) { return "/dev/shm/" + shm_name(cluster); }

/// What a process says when cluster's segment turns out to be damaged (`why`): a connection_error's message.
inline std::string damaged_segment_message(std::string_view cluster, std::string_view why) {
  return "the shared memory of cluster '" + std::string(cluster) + "' is corrupted or is not a cadre segment (" + std::string(why) +
         "); nothing in it can be trusted any more: stop the cluster with `cadre stop --name " + std::string(cluster) +
         "` (or let its launcher stop it) and start it again";
}

/// Whether a file (as lstat sees it) may be a segment of this user: a regular file this user owns,
/// with no access for group or others (cadre makes them 0600). cadre opens, maps and removes no other.
inline bool is_private_segment_file(const struct stat& st) noexcept {
  return S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 077) == 0;
}

/// Why the file at `path` (not a private segment file) is left alone, and the ways out, `other_name`
/// first: "/dev/shm/cadre-0-x belongs to uid 65534 (a FIFO, mode 0644), not to this user (uid 0), so
/// cadre will not touch it; <other_name>, or, as root, remove that exact path: rm /dev/shm/cadre-0-x".
inline std::string unusable_segment_file(const std::string& path, const struct stat& st, std::string_view other_name) {
  const mode_t t = st.st_mode & S_IFMT;
  const char* kind = t == S_IFREG ? "a regular file" : t == S_IFIFO ? "a FIFO" : t == S_IFLNK ? "a symbolic link"
                     : t == S_IFDIR ? "a directory" : t == S_IFSOCK ? "a socket" : "a device";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
  const std::string what = std::string("(") + kind + ", mode " + mode + ")";
  const std::string me = "uid " + std::to_string(::geteuid());
  if (st.st_uid != ::geteuid())
    return path + " belongs to uid " + std::to_string(st.st_uid) + " " + what + ", not to this user (" + me +
           "), so cadre will not touch it; " + std::string(other_name) + ", or, as root, remove that exact path: rm " + path;
  return path + " is this user's (" + me + ") but is " + kind + " of mode " + mode +
         ", not a regular file of mode 0600 as cadre makes, so cadre will not touch it; " + std::string(other_name) +
         ", or remove that exact path: rm " + path;
}

struct SegmentConfig {
  std::string cluster;
  std::uint32_t engines = 1;
  std::uint64_t size = 1ull << 30;
  std::string engine_path;
  std::string log_dir;  // empty: engine output goes to the launcher's stderr
  const std::uint8_t* build_id = nullptr;
  std::size_t build_id_len = 0;
  std::uint32_t threads_per_engine = 1;
};

/// A mapped segment. Movable; unmaps on destruction (removal is explicit: Segment::remove).
class Segment {
 public:
  Segment() = default;

  /// Creates and initialises a new segment (exclusive create, mode 0600). Throws connection_error when
  /// a live cluster of that name exists, capacity_error when /dev/shm cannot hold the control area.
  static Segment create(const SegmentConfig& cfg) {
    validate_cluster_name(cfg.cluster);
    if (cfg.engines == 0 || cfg.engines > kMaxEngines)
      throw argument_error("engine count " + std::to_string(cfg.engines) + " is out of range: use 1 to " +
                           std::to_string(kMaxEngines));
    const Map m = layout(cfg.engines, cfg.size);
    if (m.heap_pages < 4)
      throw argument_error("segment size " + format_bytes(cfg.size) + " is too small for " + std::to_string(cfg.engines) +
                           (cfg.engines == 1 ? " engine" : " engines") + ": use at least " +
                           format_bytes(min_size(cfg.engines)));
    check_fits_in_memory(cfg.size);
    const std::string name = shm_name(cfg.cluster);
    Segment s;
    s.name_ = cfg.cluster;
    for (int attempt = 0;; ++attempt) {
      try {
        s.shm_ = bip::shared_memory_object(bip::create_only, name.c_str(), bip::read_write, bip::permissions(0600));
        break;
      } catch (const bip::interprocess_exception& e) {
        if (e.get_error_code() != bip::already_exists_error)
          throw connection_error("cannot create /dev/shm/" + name + " for cluster '" + cfg.cluster + "': " + e.what());
        const std::string path = segment_path(cfg.cluster);
        if (struct stat st{}; ::lstat(path.c_str(), &st) == 0 && !is_private_segment_file(st))
          throw connection_error("cannot create the segment of cluster '" + cfg.cluster + "': " +
                                 unusable_segment_file(path, st, "choose another cluster name"));
        // A second "already exists" means someone re-created the name since we removed a stale one.
        if (attempt > 0 || !remove_if_stale(cfg.cluster))
          throw connection_error("a cluster named '" + cfg.cluster + "' is already running; stop it with `cadre stop --name " +
                                 cfg.cluster + "` or choose another name");
      }
    }
    try {
      const int fd = s.fd();
      ::fchmod(fd, 0600);  // belt and braces against a permissive umask path
      s.shm_.truncate(bip::offset_t(cfg.size));
      // Back the control area now so a full /dev/shm is an error here, not a SIGBUS later.
      if (int rc = ::posix_fallocate(fd, 0, off_t(m.heap_off)); rc != 0)
        throw capacity_error("cannot reserve " + format_bytes(m.heap_off) + " in /dev/shm for cluster '" + cfg.cluster +
                             "': " + std::strerror(rc) + "; free space in /dev/shm or use fewer engines");
      s.region_ = bip::mapped_region(s.shm_, bip::read_write);
      s.base_ = static_cast<std::byte*>(s.region_.get_address());
      s.size_ = cfg.size;
      s.map_ = m;
      s.engines_ = cfg.engines;
      s.init(cfg, m);
    } catch (const bip::interprocess_exception& e) {
      s.region_ = bip::mapped_region();
      bip::shared_memory_object::remove(name.c_str());
      throw connection_error("cannot size or map /dev/shm/" + name + " for cluster '" + cfg.cluster + "': " + e.what());
    } catch (...) {
      s.region_ = bip::mapped_region();
      bip::shared_memory_object::remove(name.c_str());
      throw;
    }
    return s;
  }

  /// Opens a ready segment. Waits at most `wait` for a segment that is still being initialised.
  static Segment open(std::string_view cluster, std::chrono::milliseconds wait = std::chrono::milliseconds(2000)) {
    validate_cluster_name(cluster);
    const std::string name = shm_name(cluster);
    const std::string path = segment_path(cluster);
    // Type and owner before any open: another user's FIFO or file under this name is left alone.
    if (struct stat st{}; ::lstat(path.c_str(), &st) == 0 && !is_private_segment_file(st))
      throw connection_error("cannot connect to cluster '" + std::string(cluster) + "': " +
                             unusable_segment_file(path, st, "connect to a cluster of another name"));
    Segment s;
    s.name_ = std::string(cluster);
    try {
      s.shm_ = bip::shared_memory_object(bip::open_only, name.c_str(), bip::read_write);
    } catch (const bip::interprocess_exception&) {
      throw connection_error("no cluster named '" + std::string(cluster) + "' is running for this user; start one with `cadre start -n 4" +
                             (cluster == "default" ? std::string() : " --name " + std::string(cluster)) + "`");
    }
    struct stat st{};
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      if (::fstat(s.fd(), &st) != 0) throw connection_error("cannot stat segment " + name + ": " + std::strerror(errno));
      if (!is_private_segment_file(st))
        throw connection_error("cannot connect to cluster '" + std::string(cluster) + "': " +
                               unusable_segment_file(path, st, "connect to a cluster of another name"));
      if (std::uint64_t(st.st_size) >= sizeof(SegmentHeader)) {
        if (!s.base_) {
          s.region_ = bip::mapped_region(s.shm_, bip::read_write);
          s.base_ = static_cast<std::byte*>(s.region_.get_address());
          s.size_ = s.region_.get_size();
        }
        auto& h = s.header();
        // Pairs with the release-store of SegmentState::ready at the end of init().
        if (h.state.load(std::memory_order_acquire) == std::uint32_t(SegmentState::ready)) {
          s.adopt_header();
          return s;
        }
        if (h.state.load() == std::uint32_t(SegmentState::stopping))
          throw connection_error("cluster '" + std::string(cluster) + "' is stopping");
      }
      if (std::chrono::steady_clock::now() > deadline)
        throw connection_error("cluster '" + std::string(cluster) + "' did not become ready within " + std::to_string(wait.count()) +
                               " ms (half-made or foreign segment /dev/shm/" + name + "); remove it with `cadre stop --name " +
                               std::string(cluster) + "`");
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  /// Why this segment can no longer be trusted, or nullptr: its launcher found it damaged, or its header
  /// changed since this process mapped it (magic, layout version, or the checksum of what creation set,
  /// recomputed: ~150 multiplications). For periodic checks (a client's health period, an engine's idle
  /// second, the launcher's monitor), never per record.
  [[nodiscard]] const char* damage() const noexcept {
    const SegmentHeader& h = header();
    // Pairs with the CAS in report_damage().
    if (const char* found = describe(Damage(h.damaged.load(std::memory_order_acquire)))) return found;
    if (h.magic != kMagic || h.layout_version != kLayoutVersion) return "the magic or layout version in its header changed";
    if (h.checksum != checksum_ || header_checksum(h) != checksum_) return "its header no longer matches its checksum";
    return nullptr;
  }

  /// Records in the header what this process found damaged (the first finding stays), so that the
  /// launcher stops the cluster and every other process learns it at its next check (damage()).
  void report_damage(Damage what) const noexcept {
    std::uint32_t none = 0;
    // Pairs with the acquire-load in damage().
    header().damaged.compare_exchange_strong(none, std::uint32_t(what), std::memory_order_acq_rel);
  }

  /// What a finding in SegmentHeader::damaged means, or nullptr for none.
  static const char* describe(Damage d) noexcept {
    switch (d) {
      case Damage::none: return nullptr;
      case Damage::header: return "its launcher found its header changed";
      case Damage::engine_table: return "its launcher found its engine table changed";
      case Damage::rings: return "a process found the indices of a ring out of range";
    }
    return "its damage flag holds a value no cadre writes";
  }

  /// Removes the segment's name; mappings stay valid until unmapped. True if it existed.
  static bool remove(std::string_view cluster) { return bip::shared_memory_object::remove(shm_name(cluster).c_str()); }

  /// Removes the segment if its launcher is gone. True if removed (or absent).
  static bool remove_if_stale(std::string_view cluster) {
    // Never another user's file, even as root (who may unlink anything in /dev/shm despite its sticky bit).
    struct stat st{};
    if (::lstat(segment_path(cluster).c_str(), &st) == 0 && !is_private_segment_file(st)) return false;
    pid_t creator = 0;
    try {
      Segment s = open(cluster, std::chrono::milliseconds(200));
      creator = s.header().creator_pid;
    } catch (const connection_error&) {
      // Half-made (no ready header) or absent: stale unless a creator is still initialising it.
    }
    if (creator > 0 && process_alive(creator)) return false;
    return remove(cluster);  // false: it is not ours to remove (another user's file of that name)
  }

  SegmentHeader& header() const noexcept { return *reinterpret_cast<SegmentHeader*>(base_); }
  // Where things are comes from the map this process computed and checked when it mapped the segment,
  // never from the header again: a header overwritten later cannot send anyone outside the mapping.
  EngineSlot& engine(std::uint32_t e) const noexcept { return reinterpret_cast<EngineSlot*>(base_ + map_.engines_off)[e]; }
  ClientSlot& client(std::uint32_t c) const noexcept { return reinterpret_cast<ClientSlot*>(base_ + map_.clients_off)[c]; }
  RingStorage* command_ring(std::uint32_t e, std::uint32_t c) const noexcept { return ring(e, c, 0); }
  RingStorage* completion_ring(std::uint32_t e, std::uint32_t c) const noexcept { return ring(e, c, 1); }
  LbQueue* lb_queue(std::uint32_t c, std::uint32_t q) const noexcept {
    return reinterpret_cast<LbQueue*>(base_ + map_.lbq_off) + (std::size_t(c) * kLbQueues + q);
  }
  /// The load-balanced queues of client slot c.
  std::span<LbQueue, kLbQueues> lb_queues(std::uint32_t c) const noexcept {
    return std::span<LbQueue, kLbQueues>(lb_queue(c, 0), kLbQueues);
  }
  std::uint32_t engines() const noexcept { return engines_; }
  std::byte* base() const noexcept { return base_; }
  std::uint64_t size() const noexcept { return size_; }
  const std::string& cluster() const noexcept { return name_; }
  explicit operator bool() const noexcept { return base_ != nullptr; }

  // ---- heap ---------------------------------------------------------------------------------

  /// Allocates a block of at least `bytes` usable bytes owned by `tag`, with `refs` initial references.
  /// Returns its offset. Throws capacity_error when no run of free pages is long enough.
  std::uint64_t alloc_block(std::size_t bytes, std::uint32_t tag, std::uint64_t refs) {
    const Map& h = map_;
    const std::uint64_t need = (bytes + sizeof(BlockHeader) + kPageSize - 1) / kPageSize;
    PageEntry* pages = page_table();
    for (int pass = 0; pass < 2; ++pass) {
      std::uint64_t run = 0;
      for (std::uint64_t p = 0; p < h.heap_pages; ++p) {
        if (pages[p].owner.load(std::memory_order_relaxed) != 0) {
          run = 0;
          continue;
        }
        if (++run < need) continue;
        const std::uint64_t first = p + 1 - need;
        if (claim(first, need, tag)) {
          pages[first].run = std::uint32_t(need);
          auto* b = reinterpret_cast<BlockHeader*>(base_ + h.heap_off + first * kPageSize);
          try {
            commit(first + need);
          } catch (...) {
            for (std::uint64_t i = need; i-- > 0;) pages[first + i].owner.store(0, std::memory_order_release);
            pages[first].run = 0;
            throw;
          }
          b->magic = kBlockMagic;
          b->pages = need;
          b->bytes = need * kPageSize - sizeof(BlockHeader);
          b->refs.store(refs, std::memory_order_release);
          header().used_pages.fetch_add(need, std::memory_order_relaxed);
          return h.heap_off + first * kPageSize;
        }
        run = 0;  // lost a race for one of these pages: keep scanning
      }
    }
    throw capacity_error("cluster '" + name_ + "' has no room for " + format_bytes(bytes) + ": its segment holds " +
                         format_bytes(map_.heap_pages * kPageSize) + " of heap, " +
                         format_bytes(header().used_pages.load() * kPageSize) + " in use; erase values you no longer need, or "
                         "start the cluster with a larger segment (ClusterOptions::segment_size / `cadre start --segment-size`)");
  }

  /// The header of the block at `off`, after checking that off names a block inside this heap.
  /// Throws decode_error for anything else: offsets come from shared memory and are not trusted.
  BlockHeader* block(std::uint64_t off) const {
    const Map& h = map_;
    if (off < h.heap_off || off >= h.heap_off + h.heap_pages * kPageSize || (off - h.heap_off) % kPageSize != 0)
      throw decode_error("block offset " + std::to_string(off) + " is outside the heap of cluster '" + name_ + "'");
    auto* b = reinterpret_cast<BlockHeader*>(base_ + off);
    const std::uint64_t first = (off - h.heap_off) / kPageSize;
    if (b->magic != kBlockMagic || b->pages == 0 || first + b->pages > h.heap_pages || b->bytes != b->pages * kPageSize - sizeof(BlockHeader))
      throw decode_error("block at offset " + std::to_string(off) + " has a corrupt header");
    return b;
  }
  std::byte* block_data(std::uint64_t off) const { return reinterpret_cast<std::byte*>(block(off) + 1); }

  /// Adds references (kNsRef or kPin units) to a live block.
  void retain(std::uint64_t off, std::uint64_t refs) const { block(off)->refs.fetch_add(refs, std::memory_order_relaxed); }

  /// Drops references; the holder of the last one frees the block's pages.
  void release(std::uint64_t off, std::uint64_t refs) const {
    BlockHeader* b = block(off);
    if (b->refs.fetch_sub(refs, std::memory_order_acq_rel) == refs) free_pages(off, b->pages);
  }

  /// Frees every block owned by `tag` (a dead process): namespace references vanish with the process;
  /// blocks still pinned by readers are freed by the last reader's release(). With drop_pins, the pins
  /// go too (a dead client's unread results: the pins were its own).
  void reclaim(std::uint32_t tag, bool drop_pins = false) const {
    const Map& h = map_;
    PageEntry* pages = page_table();
    for (std::uint64_t p = 0; p < h.heap_pages;) {
      // A run that would end past the heap is a damaged entry, not a block: left alone.
      const std::uint64_t run = pages[p].run;
      if (pages[p].owner.load(std::memory_order_acquire) != tag || run == 0 || run > h.heap_pages - p) {
        ++p;
        continue;
      }
      // The owner word of the first page decides who has the block: a client taking a handed-over
      // block back (take_back) races with us on it.
      std::uint32_t expected = tag;
      if (!pages[p].owner.compare_exchange_strong(expected, kReclaimingTag, std::memory_order_seq_cst)) {
        ++p;
        continue;
      }
      const std::uint64_t off = h.heap_off + p * kPageSize;
      auto* b = reinterpret_cast<BlockHeader*>(base_ + off);
      std::uint64_t r = b->refs.load();
      const std::uint64_t keep = drop_pins ? 0 : (kNsRef - 1);
      while (!b->refs.compare_exchange_weak(r, r & keep)) {
      }
      if ((r & keep) == 0) free_pages(off, run);  // no reader holds a pin (or never referenced)
      else pages[p].owner.store(tag, std::memory_order_release);  // the last reader's release() frees it
      p += run;
    }
  }

  /// Gives the block at `off`, which the caller owns, to owner tag `to` (every page; the first, which
  /// reclaim() looks at, last and sequentially consistent).
  void retag(std::uint64_t off, std::uint32_t to) const {
    const BlockHeader* b = block(off);
    const std::uint64_t first = (off - map_.heap_off) / kPageSize;
    PageEntry* pages = page_table();
    for (std::uint64_t i = b->pages; i-- > 1;) pages[first + i].owner.store(to, std::memory_order_relaxed);
    pages[first].owner.store(to, std::memory_order_seq_cst);
  }

  /// Takes the block at `off` back from owner tag `from` to `to`, unless reclaim() has taken (or freed)
  /// it first. True if it is the caller's again.
  [[nodiscard]] bool take_back(std::uint64_t off, std::uint32_t from, std::uint32_t to) const noexcept {
    const Map& h = map_;
    if (off < h.heap_off || off >= h.heap_off + h.heap_pages * kPageSize || (off - h.heap_off) % kPageSize != 0) return false;
    const std::uint64_t first = (off - h.heap_off) / kPageSize;
    PageEntry* pages = page_table();
    if (!pages[first].owner.compare_exchange_strong(from, to, std::memory_order_seq_cst)) return false;
    const std::uint64_t n = reinterpret_cast<const BlockHeader*>(base_ + off)->pages;
    for (std::uint64_t i = 1; i < n && first + i < h.heap_pages; ++i) pages[first + i].owner.store(to, std::memory_order_relaxed);
    return true;
  }

  /// Whether the process holding a client slot (ClientSlot::pid: a client, or -pid of one retiring it) lives.
  static bool slot_holder_alive(std::int32_t pid) noexcept { return pid != 0 && process_alive(pid > 0 ? pid : -pid); }

  /// Retires client slot c, held by `holder` (ClientSlot::pid as read), and frees it. For a client that
  /// detaches (dead = false) or died (dead = true; its client-tagged blocks go too, pins included).
  /// While the slot is marked as retiring, the generation is bumped so engines drop the old client's
  /// records and completions; the load-balanced tasks still queued are taken out of its queues (as an
  /// engine would take them, without running them); engines claiming a load-balanced task or posting a
  /// completion for it right now are waited for; then every unread completion's pin is released and
  /// its ring emptied — so the next client of the slot finds no record of the old one (a stale record's
  /// block may by then belong to someone else). False when another process took the slot first.
  bool retire_client(std::uint32_t c, std::int32_t holder, bool dead) const noexcept {
    ClientSlot& s = client(c);
    if (holder == 0 || !s.pid.compare_exchange_strong(holder, -std::int32_t(::getpid()), std::memory_order_seq_cst)) return false;
    s.generation.fetch_add(1, std::memory_order_seq_cst);
    if (dead && s.counted_runnable.exchange(0)) header().runnable.fetch_sub(1);
    for (std::uint32_t q = 0; q < kLbQueues; ++q) drain_balanced(c, q, dead);
    for (std::uint32_t e = 0; e < engines(); ++e) {
      // Pairs with the engine's seq_cst store of `completing` before it re-reads the generation: either
      // it sees the new generation and drops its completion (or the load-balanced record it claimed,
      // freeing its block: we have not reclaimed yet), or we see it and wait. An engine that claimed a
      // record the drain above did not get stored `completing` before its claim, which the drain saw.
      EngineSlot& es = engine(e);
      const std::uint64_t deadline = now_ns() + 2'000'000'000u;
      for (unsigned spins = 0; es.completing.load(std::memory_order_seq_cst) == c + 1; ++spins) {
        if (now_ns() > deadline || ((spins & 255) == 255 && !process_alive(es.pid.load()))) break;
        ::usleep(50);
      }
    }
    for (std::uint32_t e = 0; e < engines(); ++e) {
      RingConsumer unread(completion_ring(e, c));  // read as the client would have (at most one lap)
      for (std::uint32_t n = 0; n < kRingSlots; ++n) {
        const RingSlot* r = unread.peek();
        if (!r) break;
        if (const std::uint64_t block = r->block) {
          try {
            release(block, kPin);
          } catch (...) {
          }
        }
        unread.release();
      }
    }
    if (dead) reclaim(client_tag(c), true);
    s.pid.store(0, std::memory_order_release);
    return true;
  }

  /// Whether the block at `off` (an untrusted offset) is a block whose first page `tag` owns.
  bool owned_by(std::uint64_t off, std::uint32_t tag) const noexcept {
    const Map& h = map_;
    if (off < h.heap_off || off >= h.heap_off + h.heap_pages * kPageSize || (off - h.heap_off) % kPageSize != 0) return false;
    const PageEntry& first = page_table()[(off - h.heap_off) / kPageSize];
    return first.run != 0 && first.owner.load(std::memory_order_acquire) == tag;
  }

  std::uint64_t heap_bytes() const noexcept { return map_.heap_pages * kPageSize; }
  std::uint64_t used_bytes() const noexcept { return header().used_pages.load(std::memory_order_relaxed) * kPageSize; }

 private:
  struct Map {
    std::uint64_t engines_off, clients_off, rings_off, lbq_off, pages_off, heap_off, heap_pages;
  };

  /// Checks the header of a ready segment just mapped, copying each field before looking at it, and
  /// adopts its map: the one computed here from its engine count and size, once the header agrees.
  void adopt_header() {
    const SegmentHeader& h = header();
    const std::uint64_t magic = h.magic;
    const std::uint32_t version = h.layout_version, engines = h.engine_count;
    const std::uint64_t size = h.segment_size, sum = h.checksum;
    if (magic != kMagic) throw connection_error(damaged_segment_message(name_, "its header does not start with cadre's magic number"));
    if (version != kLayoutVersion)
      throw connection_error("cluster '" + name_ + "' uses segment layout " + std::to_string(version) + ", this program expects " +
                             std::to_string(kLayoutVersion) + "; rebuild against the same cadre version");
    if (sum != header_checksum(h)) throw connection_error(damaged_segment_message(name_, "its header does not match its checksum"));
    const Map m = engines >= 1 && engines <= kMaxEngines ? layout(engines, size) : Map{};
    if (size != size_ || engines < 1 || engines > kMaxEngines || m.heap_pages < 4 || m.heap_off != h.heap_off ||
        m.engines_off != h.engines_off || m.clients_off != h.clients_off || m.rings_off != h.rings_off || m.lbq_off != h.lbq_off ||
        m.pages_off != h.pages_off || m.heap_pages != h.heap_pages)
      throw connection_error(damaged_segment_message(name_, "its header is inconsistent with its size"));
    // Pairs with the CAS in report_damage().
    if (const char* found = describe(Damage(h.damaged.load(std::memory_order_acquire))))
      throw connection_error(damaged_segment_message(name_, found));
    map_ = m;
    engines_ = engines;
    checksum_ = sum;
  }

  static Map layout(std::uint32_t engines, std::uint64_t size) noexcept {
    Map m{};
    m.engines_off = align_up(sizeof(SegmentHeader), kCacheLine);
    m.clients_off = m.engines_off + align_up(sizeof(EngineSlot) * engines, kCacheLine);
    m.rings_off = m.clients_off + align_up(sizeof(ClientSlot) * kMaxClients, kCacheLine);
    m.lbq_off = m.rings_off + sizeof(RingStorage) * 2 * kMaxClients * engines;
    m.pages_off = m.lbq_off + sizeof(LbQueue) * kMaxClients * kLbQueues;
    if (size <= m.pages_off) return m;
    const std::uint64_t guess = (size - m.pages_off) / (kPageSize + sizeof(PageEntry));
    m.heap_off = align_up(m.pages_off + guess * sizeof(PageEntry), kPageSize);
    m.heap_pages = size > m.heap_off ? (size - m.heap_off) / kPageSize : 0;
    return m;
  }

  /// The smallest segment, in whole MiB (so that format_bytes() prints it exactly), whose layout for
  /// `engines` has the 4 heap pages create() asks for.
  static std::uint64_t min_size(std::uint32_t engines) noexcept {
    const std::uint64_t control = layout(engines, 0).pages_off;  // everything before the page table
    std::uint64_t size = align_up(align_up(control + 4 * sizeof(PageEntry), kPageSize) + 4 * kPageSize, 1u << 20);
    while (layout(engines, size).heap_pages < 4) size += 1u << 20;
    return size;
  }

  static void check_fits_in_memory(std::uint64_t size) {
    const long pages = ::sysconf(_SC_PHYS_PAGES), psz = ::sysconf(_SC_PAGESIZE);
    const std::uint64_t ram = std::uint64_t(pages) * std::uint64_t(psz);
    struct statvfs vfs{};
    std::uint64_t shm_free = ram;
    if (::statvfs("/dev/shm", &vfs) == 0) shm_free = std::uint64_t(vfs.f_bavail) * vfs.f_frsize;
    if (size > ram || size > shm_free)
      throw capacity_error("segment size " + format_bytes(size) + " is larger than this machine can hold (" + format_bytes(ram) +
                           " of memory, " + format_bytes(shm_free) + " free in /dev/shm); ask for less");
  }

  void init(const SegmentConfig& cfg, const Map& m) {
    auto* h = new (base_) SegmentHeader{};
    h->magic = kMagic;
    h->layout_version = kLayoutVersion;
    h->engine_count = cfg.engines;
    h->segment_size = cfg.size;
    h->creator_pid = ::getpid();
    h->creator_uid = ::geteuid();
    h->engines_off = m.engines_off;
    h->clients_off = m.clients_off;
    h->rings_off = m.rings_off;
    h->lbq_off = m.lbq_off;
    h->pages_off = m.pages_off;
    h->heap_off = m.heap_off;
    h->heap_pages = m.heap_pages;
    h->cpus = usable_cpus();
    h->threads_per_engine = cfg.threads_per_engine;
    h->engine_build_id_len = std::uint32_t(std::min<std::size_t>(cfg.build_id_len, sizeof h->engine_build_id));
    if (cfg.build_id) std::memcpy(h->engine_build_id, cfg.build_id, h->engine_build_id_len);
    std::snprintf(h->engine_path, sizeof h->engine_path, "%s", cfg.engine_path.c_str());
    std::snprintf(h->log_dir, sizeof h->log_dir, "%s", cfg.log_dir.c_str());
    h->log_to_files = cfg.log_dir.empty() ? 0 : 1;
    h->checksum = checksum_ = header_checksum(*h);
    for (std::uint32_t e = 0; e < cfg.engines; ++e) new (&engine(e)) EngineSlot{};
    for (std::uint32_t c = 0; c < kMaxClients; ++c) new (&client(c)) ClientSlot{};
    for (std::uint32_t i = 0; i < 2 * kMaxClients * cfg.engines; ++i) init_ring(reinterpret_cast<RingStorage*>(base_ + m.rings_off) + i);
    for (std::uint32_t i = 0; i < kMaxClients * kLbQueues; ++i) init_lb_queue(reinterpret_cast<LbQueue*>(base_ + m.lbq_off) + i);
    // The page table lies in the fallocate'd control area; tmpfs pages read as zero (all free).
    // Pairs with the acquire-load of state in open().
    h->state.store(std::uint32_t(SegmentState::ready), std::memory_order_release);
  }

  /// Takes every task still queued in load-balanced queue q of client slot c (being retired) out of it
  /// (lb_drain: as a consumer, racing with the engines for each) and drops it: nothing of the old client
  /// is run after its retirement, and no record of it is left for an engine to release once its blocks
  /// may belong to the next client. The blocks of a client that detaches are released here; a dead
  /// client's are left to the reclaim of its tag.
  void drain_balanced(std::uint32_t c, std::uint32_t q, bool dead) const noexcept {
    lb_drain(*lb_queue(c, q), [&](const RingSlot& r) noexcept {
      const std::uint64_t block = r.block;
      if (block && !dead && owned_by(block, client_tag(c))) {
        try {
          release(block, kNsRef);
        } catch (...) {
        }
      }
    });
  }

  RingStorage* ring(std::uint32_t e, std::uint32_t c, std::uint32_t dir) const noexcept {
    return reinterpret_cast<RingStorage*>(base_ + map_.rings_off) + (std::size_t(e) * kMaxClients + c) * 2 + dir;
  }
  PageEntry* page_table() const noexcept { return reinterpret_cast<PageEntry*>(base_ + map_.pages_off); }
  int fd() const noexcept { return int(shm_.get_mapping_handle().handle); }

  bool claim(std::uint64_t first, std::uint64_t n, std::uint32_t tag) const noexcept {
    PageEntry* pages = page_table();
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint32_t expected = 0;
      if (!pages[first + i].owner.compare_exchange_strong(expected, tag, std::memory_order_acquire)) {
        while (i-- > 0) pages[first + i].owner.store(0, std::memory_order_release);
        return false;
      }
    }
    return true;
  }

  void free_pages(std::uint64_t off, std::uint64_t n) const noexcept {
    const std::uint64_t first = (off - map_.heap_off) / kPageSize;
    PageEntry* pages = page_table();
    reinterpret_cast<BlockHeader*>(base_ + off)->magic = 0;
    pages[first].run = 0;
    header().used_pages.fetch_sub(n, std::memory_order_relaxed);
    // Release-stores pair with the acquire CAS in claim(): the next owner sees our writes finished.
    for (std::uint64_t i = n; i-- > 0;) pages[first + i].owner.store(0, std::memory_order_release);
  }

  /// Backs heap pages [0, end_page) with memory, in 32 MiB steps, so that a full /dev/shm shows up as
  /// capacity_error at allocation and never as SIGBUS on first touch. Idempotent: any process may do it.
  void commit(std::uint64_t end_page) {
    auto& h = header();
    std::uint64_t done = h.committed_pages.load(std::memory_order_acquire);
    // A count past the heap is damage: back it all again (fallocate of backed pages changes nothing).
    if (done > map_.heap_pages) done = 0;
    if (end_page <= done) return;
    constexpr std::uint64_t kStep = (32u << 20) / kPageSize;
    const std::uint64_t target = std::min(map_.heap_pages, align_up(end_page, kStep));
    const std::uint64_t from = map_.heap_off + done * kPageSize, len = (target - done) * kPageSize;
    if (int rc = ::posix_fallocate(fd(), off_t(from), off_t(len)); rc != 0)
      throw capacity_error("/dev/shm is full: cannot back " + format_bytes(len) + " more of cluster '" + name_ + "': " +
                           std::strerror(rc) + "; free space in /dev/shm or use a smaller segment");
    while (done < target && !h.committed_pages.compare_exchange_weak(done, target, std::memory_order_acq_rel)) {
    }
  }

  std::string name_;
  bip::shared_memory_object shm_;
  bip::mapped_region region_;
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
  Map map_{};                  // where things are, as computed when mapping (see adopt_header)
  std::uint32_t engines_ = 0;  // engine count, likewise
  std::uint64_t checksum_ = 0; // the header's checksum when mapped (see damage)
};

}  // namespace cadre::detail
