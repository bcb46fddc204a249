// The progress line of wait_interactive (detail/client/progress.hpp) and the reading of a crash stack
// (detail/engine/crash_report.hpp): pure text, checked without engines.
#include "test_util.hpp"

#include <cadre/detail/client/progress.hpp>
#include <cadre/detail/engine/crash_report.hpp>

#include <string>
#include <vector>

namespace {

namespace cd = cadre::detail;

TEST(progress_line, never_exceeds_its_width_and_keeps_the_count_longest) {
  const std::vector<int> many = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  for (std::size_t width = 1; width < 200; ++width)
    for (const auto& busy : {std::vector<int>{}, std::vector<int>{3}, many}) {
      const std::string line = cd::progress_line(17, 64, 0.345, busy, width);
      EXPECT_LE(line.size(), width) << line;
      if (width >= 33) {
        EXPECT_NE(line.find("17/64 tasks finished after 0.34 s"), std::string::npos) << width << ": " << line;
      }
    }
}

TEST(progress_line, shows_the_whole_bar_and_list_when_they_fit_and_cuts_the_list_at_a_whole_number) {
  EXPECT_EQ(cd::progress_line(32, 64, 1.5, {0, 2}, 200),
            "[###############...............] 32/64 tasks finished after 1.50 s (busy: engines 0,2)");
  EXPECT_EQ(cd::progress_line(64, 64, 2, {}, 200), "[##############################] 64/64 tasks finished after 2.00 s");
  EXPECT_EQ(cd::progress_line(0, 4, 0, {1}, 200), "[..............................] 0/4 tasks finished after 0.00 s (busy: engine 1)");
  EXPECT_EQ(cd::busy_text({10, 11, 12, 13}, 26), " (busy: engines 10,11,...)");
}

TEST(crash_report, demangles_what_gccs_demangler_gives_up_on_and_keeps_clone_suffixes) {
  // A generic lambda taking a pack inside cadre's call thunk: __cxa_demangle of GCC 12 fails on both
  // (then demangle shows "std::__invoke_impl<...>" and "...::{lambda}").
  const std::string invoke = cd::demangle(
      "_ZSt13__invoke_implIiZZN5cadre6detail5thunkIPFiiELb0EJiEEEvRNS1_9CallFrameEENKUlRT_E_clIS4_EEDcS8_EUlDpRT_E_JRiEES7_St14__"
      "invoke_otherOT0_DpOT1_");
  EXPECT_TRUE(invoke.starts_with("int std::__invoke_impl<") || invoke == "std::__invoke_impl<...>") << invoke;
  const std::string local = cd::demangle(
      "_ZZZN5cadre6detail5thunkIPFiiELb0EJiEEEvRNS0_9CallFrameEENKUlRT_E_clIS3_EEDcS7_ENKUlDpRT_E_clIJiEEEDcSC_");
  EXPECT_TRUE(local.starts_with("decltype(auto) cadre::detail::thunk<int (*)(int), false, int>(cadre::detail::CallFrame&)")) << local;
  EXPECT_EQ(local.find("_Z"), std::string::npos) << local;
  EXPECT_EQ(cd::demangle("_Z3fooi.cold"), "foo(int) [clone .cold]");
  EXPECT_EQ(cd::demangle("abort"), "abort");
}

TEST(crash_report, tells_cadres_engine_from_the_users_code_by_the_functions_name) {
  EXPECT_EQ(cd::function_name("void std::__invoke_impl<void, F>(std::__invoke_other, F&&)"), "std::__invoke_impl");
  EXPECT_EQ(cd::function_name("decltype(auto) cadre::detail::thunk<F>(cadre::detail::CallFrame&)::{lambda(auto:1&)#1}::operator()<F>(F&) const"),
            "cadre::detail::thunk");
  EXPECT_EQ(cd::function_name("(anonymous namespace)::crash_by_null_write(int)"), "(anonymous namespace)::crash_by_null_write");
  for (const char* engine : {"cadre::detail::Engine::serve()", "std::__invoke_impl<...>", "std::apply<...>", "main", "__libc_start_call_main", "_start"})
    EXPECT_TRUE(cd::is_engine_frame(engine)) << engine;
  for (const char* user : {"(anonymous namespace)::crash_by_null_write(int)", "abort", "raise", "my::solve(std::vector<double> const&)",
                           "bar()::{lambda(int)#1}::operator()(int) const"})
    EXPECT_FALSE(cd::is_engine_frame(user)) << user;
}

}  // namespace
