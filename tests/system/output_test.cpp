// tests/output_test.cpp — what a task prints on its engine comes back with its future (stdout(),
// stderr(), display_outputs()), belongs to that task only, and is forwarded to the launcher.
#include "test_util.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

namespace {

using namespace cadre_test;

int print_both(int x) {
  std::printf("out %d\n", x);
  std::cerr << "err " << x << '\n';
  return x;
}
int print_nothing(int x) { return x; }
int write_raw(int x) {
  const std::string s = "raw " + std::to_string(x) + "\n";
  return ::write(1, s.data(), s.size()) == ssize_t(s.size()) ? x : -1;
}
int print_big(int kib) {
  const std::string line(1023, 'x');
  for (int i = 0; i < kib; ++i) std::printf("%s\n", line.c_str());
  return kib;
}

TEST(task_output, stdout_and_stderr_come_back_with_the_task_that_printed_them) {
  auto ar = rc()[0].apply_async(print_both, 7);
  EXPECT_EQ(ar.get(), 7);
  EXPECT_EQ(ar.stdout(), std::vector<std::string>{"out 7\n"});
  EXPECT_EQ(ar.stderr(), std::vector<std::string>{"err 7\n"});
}

TEST(task_output, belongs_to_its_task_only) {
  auto printed = rc()[1].apply_async(print_both, 1);
  auto silent = rc()[1].apply_async(print_nothing, 2);
  auto again = rc()[1].apply_async(print_both, 3);
  EXPECT_EQ(printed.stdout(), std::vector<std::string>{"out 1\n"});
  EXPECT_EQ(silent.stdout(), std::vector<std::string>{""});
  EXPECT_EQ(silent.stderr(), std::vector<std::string>{""});
  EXPECT_EQ(again.stdout(), std::vector<std::string>{"out 3\n"});
}

TEST(task_output, of_every_engine_of_a_direct_view_in_target_order) {
  auto ar = rc()[cadre::slice(0, 4, 2)].apply_async(print_both, 5);
  EXPECT_EQ(ar.stdout(), (std::vector<std::string>{"out 5\n", "out 5\n"}));
}

TEST(task_output, written_with_the_write_system_call_is_captured_too) {
  for (int i = 0; i < 3; ++i) {
    auto ar = rc()[2].apply_async(write_raw, i);
    EXPECT_EQ(ar.get(), i);
    EXPECT_EQ(ar.stdout(), std::vector<std::string>{"raw " + std::to_string(i) + "\n"});
  }
}

TEST(task_output, larger_than_a_page_comes_back_whole_and_the_next_task_starts_empty) {
  auto big = rc()[3].apply_async(print_big, 300);
  ASSERT_EQ(big.get(), 300);
  EXPECT_EQ(big.stdout().at(0).size(), 300u * 1024u);
  auto next = rc()[3].apply_async(print_both, 9);
  EXPECT_EQ(next.stdout(), std::vector<std::string>{"out 9\n"});
}

}  // namespace
