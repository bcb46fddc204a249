// cadre/detail/client/progress.hpp — the line AsyncResult::wait_interactive() draws, fitted to a terminal.
#pragma once

#include <sys/ioctl.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace cadre::detail {

/// The columns of the terminal on fd: its own size (TIOCGWINSZ), else $COLUMNS, else 80.
inline std::size_t terminal_width(int fd) noexcept {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    const long n = std::strtol(c, nullptr, 10);
    if (n > 0 && n < 100000) return std::size_t(n);
  }
  return 80;
}

/// " (busy: engines 0,2,5)" in at most `room` characters: whole numbers only, the rest cut to ",...";
/// "" when busy is empty or not even one number fits.
inline std::string busy_text(const std::vector<int>& busy, std::size_t room) {
  if (busy.empty()) return {};
  std::string s = busy.size() == 1 ? " (busy: engine " : " (busy: engines ";
  for (std::size_t i = 0; i < busy.size(); ++i) {
    std::string item = i ? "," : "";  // appended, not "," + string: GCC 12 warns (-Wstringop-overflow) on that
    item += std::to_string(busy[i]);
    const bool last = i + 1 == busy.size();
    if (s.size() + item.size() + (last ? 1 : 5) > room) {  // ")" or ",...)" must still fit
      if (i == 0) return {};
      return s + ",...)";
    }
    s += item;
  }
  return s + ")";
}

/// "[#####.....] 3/8 tasks finished after 1.20 s (busy: engines 0,2)" in at most `width` characters:
/// the bar narrows first (to 10), then the list of engines is cut, then the bar goes, then the count is
/// cut. `busy`: the engines running the result's tasks, sorted.
inline std::string progress_line(std::size_t done, std::size_t total, double seconds, const std::vector<int>& busy,
                                 std::size_t width) {
  char counts[96];
  std::snprintf(counts, sizeof counts, "%zu/%zu tasks finished after %.2f s", done, total, seconds);
  const std::string count = counts;
  const auto bar = [&](std::size_t w) {
    std::string b(total ? w * done / total : w, '#');
    b.resize(w, '.');
    return "[" + b + "] ";
  };
  constexpr std::size_t kBar = 30, kMinBar = 10, kBrackets = 3;
  const std::string busy_all = busy_text(busy, std::string::npos);
  if (kBrackets + kBar + count.size() + busy_all.size() <= width) return bar(kBar) + count + busy_all;
  const std::size_t rest = kBrackets + count.size() + busy_all.size();
  if (rest + kMinBar <= width) return bar(width - rest) + count + busy_all;
  const std::size_t used = kBrackets + kMinBar + count.size();
  if (used <= width) return bar(kMinBar) + count + busy_text(busy, width - used);
  std::string line = count;
  if (line.size() > width) line.resize(width);
  return line;
}

}  // namespace cadre::detail
