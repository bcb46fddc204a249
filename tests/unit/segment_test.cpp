// tests/segment_test.cpp — the shared segment on its own (no engines): create/open/remove, permissions,
// the page heap (alloc, release, reuse, reclaim) and the checks on offsets read from shared memory.
#include "test_util.hpp"

#include <sys/stat.h>

#include <cstddef>
#include <set>

namespace {

using namespace cadre_test;
namespace cd = cadre::detail;

// Layout rules the segment relies on, restated where a test reader looks for them.
static_assert(sizeof(cd::RingSlot) == 256, "a ring slot is four cache lines");
static_assert(offsetof(cd::RingSlot, data) == cd::kCacheLine, "inline payloads start on the second cache line");
static_assert(alignof(cd::RingIndices) == cd::kCacheLine && sizeof(cd::RingIndices) == 2 * cd::kCacheLine,
              "ring head and tail each own a cache line");
static_assert(sizeof(cd::BlockHeader) == cd::kCacheLine, "block data starts cache-line aligned");
static_assert(sizeof(cd::PageEntry) == 8, "a page owner is one lock-free word plus its run length");
static_assert(std::is_trivially_copyable_v<cd::RingSlot> && std::is_standard_layout_v<cd::RingSlot>);
static_assert(cd::kPageSize % 4096 == 0, "heap pages are whole OS pages");

/// A segment made for one test and removed when the test ends.
struct TestSegment {
  std::string name = unique_name("seg");
  cd::Segment seg;
  explicit TestSegment(std::uint64_t size = 16 << 20, std::uint32_t engines = 2) {
    cd::SegmentConfig cfg;
    cfg.cluster = name;
    cfg.engines = engines;
    cfg.size = size;
    seg = cd::Segment::create(cfg);
  }
  ~TestSegment() { cd::Segment::remove(name); }
};

TEST(segment, create_then_open_sees_the_same_header) {
  TestSegment t;
  const auto& h = t.seg.header();
  EXPECT_EQ(h.magic, cd::kMagic);
  EXPECT_EQ(h.layout_version, cd::kLayoutVersion);
  EXPECT_EQ(h.engine_count, 2u);
  EXPECT_EQ(h.creator_pid, ::getpid());
  EXPECT_EQ(h.segment_size, 16u << 20);
  EXPECT_EQ(h.state.load(), std::uint32_t(cd::SegmentState::ready));
  EXPECT_EQ(h.heap_off % cd::kPageSize, 0u);
  cd::Segment other = cd::Segment::open(t.name);
  EXPECT_EQ(other.engines(), 2u);
  EXPECT_EQ(other.size(), t.seg.size());
  EXPECT_EQ(other.header().heap_pages, h.heap_pages);
  EXPECT_EQ(other.cluster(), t.name);
  // Both mappings are the same memory.
  t.seg.engine(1).tasks_done.store(77);
  EXPECT_EQ(other.engine(1).tasks_done.load(), 77u);
}

TEST(segment, its_dev_shm_file_has_mode_0600_and_belongs_to_this_user) {
  TestSegment t;
  struct stat st{};
  ASSERT_EQ(::stat(shm_path(t.name).c_str(), &st), 0) << shm_path(t.name);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(std::uint64_t(st.st_size), 16u << 20);
}

TEST(segment, remove_deletes_the_file_once) {
  TestSegment t;
  EXPECT_TRUE(shm_exists(t.name));
  EXPECT_TRUE(cd::Segment::remove(t.name));
  EXPECT_FALSE(shm_exists(t.name));
  EXPECT_FALSE(cd::Segment::remove(t.name));
  EXPECT_TRUE(t.seg.header().magic == cd::kMagic);  // the mapping outlives the name
}

TEST(segment, a_second_create_with_a_live_name_throws_connection_error) {
  TestSegment t;
  cd::SegmentConfig cfg;
  cfg.cluster = t.name;
  cfg.size = 16 << 20;
  try {
    (void)cd::Segment::create(cfg);
    ADD_FAILURE() << "created twice";
  } catch (const cadre::connection_error& e) {
    EXPECT_NE(std::string(e.what()).find("already running"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(shm_exists(t.name));
  EXPECT_EQ(cd::Segment::open(t.name).header().creator_pid, ::getpid());
}

TEST(segment, a_stale_segment_whose_creator_died_is_replaced) {
  const std::string name = unique_name("stale");
  const ChildResult r = run_in_child([&] {
    cd::SegmentConfig cfg;
    cfg.cluster = name;
    cfg.size = 8 << 20;
    (void)cd::Segment::create(cfg);  // and exit without removing it
    return 0;
  });
  ASSERT_TRUE(r.exited && r.code == 0);
  ASSERT_TRUE(shm_exists(name));
  cd::SegmentConfig cfg;
  cfg.cluster = name;
  cfg.size = 8 << 20;
  cd::Segment s = cd::Segment::create(cfg);
  EXPECT_EQ(s.header().creator_pid, ::getpid());
  cd::Segment::remove(name);
}

TEST(segment, opening_a_missing_name_throws_connection_error) {
  const std::string name = unique_name("missing");
  try {
    (void)cd::Segment::open(name, std::chrono::milliseconds(10));
    ADD_FAILURE() << "opened";
  } catch (const cadre::connection_error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
  EXPECT_FALSE(shm_exists(name));
}

TEST(segment, opening_a_file_that_others_can_read_is_refused) {
  TestSegment t;
  ASSERT_EQ(::chmod(shm_path(t.name).c_str(), 0644), 0);
  EXPECT_THROW((void)cd::Segment::open(t.name), cadre::connection_error);
}

TEST(segment, opening_a_half_made_segment_times_out_with_connection_error) {
  const std::string name = unique_name("half");
  const std::string path = shm_path(name);
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);  // zeros: never marked ready
  ::close(fd);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW((void)cd::Segment::open(name, std::chrono::milliseconds(50)), cadre::connection_error);
  EXPECT_LT(seconds_since(t0), 5.0);
  ::unlink(path.c_str());
}

TEST(segment, opening_a_segment_of_another_layout_version_is_refused) {
  TestSegment t;
  t.seg.header().layout_version = cd::kLayoutVersion + 1;
  try {
    (void)cd::Segment::open(t.name);
    ADD_FAILURE() << "opened";
  } catch (const cadre::connection_error& e) {
    EXPECT_NE(std::string(e.what()).find("layout " + std::to_string(cd::kLayoutVersion + 1)), std::string::npos) << e.what();
  }
}

TEST(segment, opening_a_segment_with_an_inconsistent_header_is_refused) {
  TestSegment t;
  t.seg.header().heap_off += cd::kPageSize;
  EXPECT_THROW((void)cd::Segment::open(t.name), cadre::connection_error);
}

TEST(segment, bad_configurations_throw_argument_error) {
  cd::SegmentConfig cfg;
  cfg.cluster = unique_name("badcfg");
  cfg.engines = 0;
  EXPECT_THROW((void)cd::Segment::create(cfg), cadre::argument_error);
  cfg.engines = cd::kMaxEngines + 1;
  EXPECT_THROW((void)cd::Segment::create(cfg), cadre::argument_error);
  cfg.engines = 1;
  cfg.size = 1024;
  EXPECT_THROW((void)cd::Segment::create(cfg), cadre::argument_error);
  cfg.cluster = "bad/name";
  cfg.size = 16 << 20;
  EXPECT_THROW((void)cd::Segment::create(cfg), cadre::argument_error);
  EXPECT_FALSE(shm_exists(cfg.cluster));
}

TEST(segment, validate_cluster_name_accepts_1_to_64_safe_characters) {
  EXPECT_NO_THROW(cd::validate_cluster_name("a"));
  EXPECT_NO_THROW(cd::validate_cluster_name("My_cluster-1.2"));
  EXPECT_NO_THROW(cd::validate_cluster_name(std::string(64, 'x')));
  for (const std::string& bad : {std::string(), std::string(65, 'x'), std::string("a/b"), std::string(".a"), std::string("a b"),
                                std::string("a\0b", 3), std::string("é")})
    EXPECT_THROW(cd::validate_cluster_name(bad), cadre::argument_error) << bad;
}

TEST(segment, alloc_block_gives_aligned_blocks_of_at_least_the_size_asked) {
  TestSegment t;
  auto& s = t.seg;
  const std::uint64_t a = s.alloc_block(1, cd::engine_tag(0), cd::kNsRef);
  const std::uint64_t b = s.alloc_block(cd::kPageSize, cd::engine_tag(0), cd::kNsRef);  // needs two pages
  EXPECT_NE(a, b);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s.block_data(a)) % cd::kCacheLine, 0u);
  EXPECT_GE(s.block(a)->bytes, 1u);
  EXPECT_EQ(s.block(b)->pages, 2u);
  EXPECT_GE(s.block(b)->bytes, cd::kPageSize);
  EXPECT_EQ(s.used_bytes(), 3 * cd::kPageSize);
  std::memset(s.block_data(b), 0xab, cd::kPageSize);  // the whole block is usable
  s.release(a, cd::kNsRef);
  s.release(b, cd::kNsRef);
  EXPECT_EQ(s.used_bytes(), 0u);
}

TEST(segment, a_released_block_is_reused_at_the_same_offset) {
  TestSegment t;
  auto& s = t.seg;
  const std::uint64_t first = s.alloc_block(1000, cd::engine_tag(1), cd::kNsRef);
  s.release(first, cd::kNsRef);
  const std::uint64_t again = s.alloc_block(1000, cd::engine_tag(1), cd::kNsRef);
  EXPECT_EQ(again, first);
  s.release(again, cd::kNsRef);
}

TEST(segment, a_block_lives_until_its_last_reference_is_released) {
  TestSegment t;
  auto& s = t.seg;
  const std::uint64_t b = s.alloc_block(100, cd::engine_tag(0), cd::kNsRef);
  s.retain(b, cd::kPin);
  s.release(b, cd::kNsRef);
  EXPECT_NO_THROW((void)s.block(b));  // still pinned
  EXPECT_EQ(s.used_bytes(), cd::kPageSize);
  s.release(b, cd::kPin);
  EXPECT_THROW((void)s.block(b), cadre::decode_error);
  EXPECT_EQ(s.used_bytes(), 0u);
}

TEST(segment, block_on_a_bad_offset_throws_decode_error) {
  TestSegment t;
  auto& s = t.seg;
  const std::uint64_t good = s.alloc_block(10, cd::engine_tag(0), cd::kNsRef);
  const std::uint64_t heap_end = s.header().heap_off + s.header().heap_pages * cd::kPageSize;
  for (std::uint64_t bad : {std::uint64_t(0), std::uint64_t(64), good + 1, good + 64, good + cd::kPageSize, heap_end,
                            heap_end + cd::kPageSize, ~std::uint64_t(0)})
    EXPECT_THROW((void)s.block(bad), cadre::decode_error) << bad;
  EXPECT_THROW(s.release(good + cd::kPageSize, cd::kNsRef), cadre::decode_error);
  // A corrupt header is caught too.
  s.block(good)->pages = s.header().heap_pages + 1;
  EXPECT_THROW((void)s.block(good), cadre::decode_error);
}

TEST(segment, alloc_block_beyond_the_heap_throws_capacity_error_naming_the_sizes) {
  TestSegment t(8 << 20);
  try {
    (void)t.seg.alloc_block(16 << 20, cd::engine_tag(0), cd::kNsRef);
    ADD_FAILURE() << "allocated more than the heap";
  } catch (const cadre::capacity_error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("16.0 MiB"), std::string::npos) << w;
    EXPECT_NE(w.find("segment_size"), std::string::npos) << w;
  }
  EXPECT_EQ(t.seg.used_bytes(), 0u);
}

TEST(segment, a_full_heap_throws_capacity_error_and_recovers_when_freed) {
  TestSegment t(8 << 20);
  auto& s = t.seg;
  std::vector<std::uint64_t> blocks;
  try {
    for (;;) blocks.push_back(s.alloc_block(1, cd::engine_tag(0), cd::kNsRef));
  } catch (const cadre::capacity_error&) {
  }
  EXPECT_EQ(blocks.size(), s.header().heap_pages);
  EXPECT_EQ(std::set<std::uint64_t>(blocks.begin(), blocks.end()).size(), blocks.size());
  s.release(blocks[3], cd::kNsRef);
  EXPECT_EQ(s.alloc_block(1, cd::engine_tag(0), cd::kNsRef), blocks[3]);
}

TEST(segment, reclaim_frees_every_block_of_one_tag_and_only_those) {
  TestSegment t;
  auto& s = t.seg;
  const std::uint32_t dead = cd::engine_tag(1), alive = cd::engine_tag(0);
  std::vector<std::uint64_t> dead_blocks, alive_blocks;
  for (int i = 0; i < 5; ++i) {
    dead_blocks.push_back(s.alloc_block(std::size_t(i + 1) * 50000, dead, cd::kNsRef));
    alive_blocks.push_back(s.alloc_block(1000, alive, cd::kNsRef));
  }
  const std::uint64_t pinned = s.alloc_block(1000, dead, cd::kNsRef);
  s.retain(pinned, cd::kPin);  // a client is still reading it
  const std::uint64_t used_alive = 5 * cd::kPageSize;
  s.reclaim(dead);
  for (auto b : dead_blocks) EXPECT_THROW((void)s.block(b), cadre::decode_error);
  for (auto b : alive_blocks) EXPECT_NO_THROW((void)s.block(b));
  EXPECT_NO_THROW((void)s.block(pinned));
  EXPECT_EQ(s.used_bytes(), used_alive + cd::kPageSize);
  s.release(pinned, cd::kPin);  // the last reader frees it
  EXPECT_EQ(s.used_bytes(), used_alive);
  s.reclaim(alive);
  EXPECT_EQ(s.used_bytes(), 0u);
  s.reclaim(alive);  // twice is harmless
  EXPECT_EQ(s.used_bytes(), 0u);
}

TEST(segment, reclaim_with_drop_pins_frees_a_dead_clients_results_too) {
  TestSegment t;
  auto& s = t.seg;
  const std::uint64_t result = s.alloc_block(100000, cd::client_tag(2), cd::kPin);  // as Engine::complete makes them
  const std::uint64_t other = s.alloc_block(100000, cd::client_tag(1), cd::kPin);
  s.reclaim(cd::client_tag(2));  // by default a pin is left to its reader...
  EXPECT_NO_THROW((void)s.block(result));
  s.reclaim(cd::client_tag(2), true);  // ...but a dead client's pins were its own
  EXPECT_THROW((void)s.block(result), cadre::decode_error);
  EXPECT_NO_THROW((void)s.block(other));
  s.release(other, cd::kPin);
  EXPECT_EQ(s.used_bytes(), 0u);
}

TEST(segment, engines_clients_and_rings_do_not_overlap) {
  TestSegment t(16 << 20, 3);
  auto& s = t.seg;
  std::set<const void*> rings;
  for (std::uint32_t e = 0; e < 3; ++e)
    for (std::uint32_t c = 0; c < cd::kMaxClients; ++c) {
      rings.insert(s.command_ring(e, c));
      rings.insert(s.completion_ring(e, c));
    }
  EXPECT_EQ(rings.size(), 2u * 3 * cd::kMaxClients);
  const auto* lo = static_cast<const std::byte*>(*rings.begin());
  const auto* hi = static_cast<const std::byte*>(*rings.rbegin()) + sizeof(cd::RingStorage);
  EXPECT_GE(lo, reinterpret_cast<const std::byte*>(&s.client(cd::kMaxClients - 1) + 1));
  EXPECT_LE(hi, s.base() + s.header().pages_off);
  EXPECT_GE(reinterpret_cast<const std::byte*>(&s.client(0)), reinterpret_cast<const std::byte*>(&s.engine(2) + 1));
  for (const void* r : rings) EXPECT_EQ(reinterpret_cast<std::uintptr_t>(r) % cd::kCacheLine, 0u);
}

TEST(segment, damage_is_none_for_a_fresh_segment_and_named_once_its_header_is_overwritten) {
  TestSegment t;
  cd::Segment other = cd::Segment::open(t.name);
  EXPECT_EQ(other.damage(), nullptr);
  t.seg.header().log_dir[3] ^= 1;
  ASSERT_NE(other.damage(), nullptr);
  EXPECT_NE(std::string(other.damage()).find("checksum"), std::string::npos) << other.damage();
}

TEST(segment, where_things_are_does_not_follow_an_overwritten_header) {
  TestSegment t;
  cd::EngineSlot* before = &t.seg.engine(1);
  cd::LbQueue* queue = t.seg.lb_queue(3, 2);
  t.seg.header().engines_off = ~0ull;
  t.seg.header().lbq_off = ~0ull;
  t.seg.header().engine_count = 100000;
  EXPECT_EQ(&t.seg.engine(1), before);
  EXPECT_EQ(t.seg.lb_queue(3, 2), queue);
  EXPECT_EQ(t.seg.engines(), 2u);
}

TEST(segment, a_client_attaching_to_an_overwritten_header_is_told_to_stop_the_cluster) {
  TestSegment t;
  t.seg.header().cpus += 1;
  try {
    (void)cd::Segment::open(t.name);
    ADD_FAILURE() << "opened";
  } catch (const cadre::connection_error& e) {
    EXPECT_NE(std::string(e.what()).find("cadre stop --name " + t.name), std::string::npos) << e.what();
  }
}

TEST(segment, a_reported_damage_is_seen_by_every_process_and_refuses_new_ones) {
  TestSegment t;
  cd::Segment other = cd::Segment::open(t.name);
  t.seg.report_damage(cd::Damage::rings);
  t.seg.report_damage(cd::Damage::header);  // the first finding stays
  ASSERT_NE(other.damage(), nullptr);
  EXPECT_NE(std::string(other.damage()).find("ring"), std::string::npos) << other.damage();
  EXPECT_THROW((void)cd::Segment::open(t.name), cadre::connection_error);
}

TEST(segment, reclaim_leaves_alone_a_page_entry_whose_run_ends_past_the_heap) {
  TestSegment t;
  auto& s = t.seg;
  const std::uint64_t heap_pages = s.heap_bytes() / cd::kPageSize;
  auto* pages = reinterpret_cast<cd::PageEntry*>(s.base() + s.header().pages_off);
  pages[heap_pages - 1].owner.store(cd::engine_tag(0));
  pages[heap_pages - 1].run = ~0u;
  const std::uint64_t ok = s.alloc_block(100, cd::engine_tag(0), cd::kNsRef);
  s.reclaim(cd::engine_tag(0));  // frees the real block, touches nothing past the table
  EXPECT_FALSE(s.owned_by(ok, cd::engine_tag(0)));
  EXPECT_EQ(pages[heap_pages - 1].owner.load(), cd::engine_tag(0));
}

}  // namespace
