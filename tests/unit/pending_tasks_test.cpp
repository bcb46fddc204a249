// PendingTasks (detail/client/pending_tasks.hpp): the client's table of tasks in flight, checked against
// std::unordered_map under random inserts and removals, with ids that collide on purpose.
#include "test_util.hpp"

#include <cadre/detail/client/pending_tasks.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

namespace {

namespace cd = cadre::detail;

cd::Task task(std::uint64_t id) {
  auto t = std::make_shared<cd::TaskState>();
  t->id = id;
  return t;
}

void expect_same(const cd::PendingTasks& table, const std::unordered_map<std::uint64_t, cd::Task>& ref) {
  ASSERT_EQ(table.size(), ref.size());
  std::size_t seen = 0;
  table.for_each([&](const cd::Task& t) {
    ++seen;
    auto it = ref.find(t->id);
    ASSERT_NE(it, ref.end()) << "the table holds task " << t->id << ", which was removed";
    EXPECT_EQ(it->second.get(), t.get());
  });
  EXPECT_EQ(seen, ref.size());
}

TEST(pending_tasks, finds_takes_and_erases_by_id) {
  cd::PendingTasks table;
  EXPECT_TRUE(table.empty());
  EXPECT_FALSE(table.erase(7));
  auto yes = [](const cd::TaskState&) { return true; };
  EXPECT_EQ(table.take(7, yes), nullptr);

  cd::Task a = task(7), b = task(7 + 64), c = task(8);  // a and b share a home slot
  table.insert(a);
  table.insert(b);
  table.insert(c);
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.take(7 + 64, [](const cd::TaskState&) { return false; }), nullptr) << "a refused task stays";
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.take(7, yes), a);
  EXPECT_EQ(table.take(7 + 64, yes), b) << "removing a must not lose b, which probed past it";
  EXPECT_EQ(table.take(8, yes), c);
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(a.use_count(), 1) << "the table let go of the tasks it gave back";
}

TEST(pending_tasks, agrees_with_a_map_under_random_inserts_and_removals) {
  std::mt19937_64 rng(12345);
  cd::PendingTasks table;
  std::unordered_map<std::uint64_t, cd::Task> ref;
  std::vector<std::uint64_t> live;
  std::uint64_t next = 1;
  for (int round = 0; round < 200'000; ++round) {
    const auto r = rng() % 100;
    if (r < 50 || live.empty()) {
      // Mostly consecutive ids, as ClientCore hands them out; now and then a jump, so that ids far
      // apart meet in one slot.
      next += (rng() % 50 == 0) ? 1 + rng() % 5000 : 1;
      auto t = task(next);
      table.insert(t);
      ref.emplace(next, t);
      live.push_back(next);
    } else {
      const std::size_t k = rng() % live.size();
      const std::uint64_t id = live[k];
      live[k] = live.back();
      live.pop_back();
      if (r < 75) {
        EXPECT_EQ(table.take(id, [](const cd::TaskState&) { return true; }), ref.at(id));
      } else {
        EXPECT_TRUE(table.erase(id));
      }
      ref.erase(id);
      EXPECT_FALSE(table.erase(id)) << "task " << id << " was removed twice";
    }
    if (round % 20'000 == 0) expect_same(table, ref);
  }
  expect_same(table, ref);
  // Empty it; the table shrinks as it empties.
  std::vector<std::uint64_t> ids;
  table.for_each([&](const cd::Task& t) { ids.push_back(t->id); });
  for (std::uint64_t id : ids) {
    ASSERT_EQ(ref.count(id), 1u);
    ref.erase(id);
    ASSERT_TRUE(table.erase(id));
  }
  EXPECT_TRUE(ref.empty());
  EXPECT_TRUE(table.empty());
}

}  // namespace
