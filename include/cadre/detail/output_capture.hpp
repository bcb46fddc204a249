// cadre/detail/output_capture.hpp — what a task prints on its engine, captured for that task's future.
//
// The engine points its stdout and stderr at two memfds. After each task it reads what was written,
// forwards it to the original streams (the launcher's "[engine N]" lines or log file), and rewinds.
// A memfd never blocks the writer, however much a task prints.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace cadre::detail {

class OutputCapture {
 public:
  static constexpr std::size_t kMaxPerTask = 1 << 20;  // bytes kept per stream and task; the rest is only forwarded

  /// Redirects fds 1 and 2. False (and no capture) when memfds are not available.
  bool start() noexcept {
    for (int i = 0; i < 2; ++i) {
      orig_[i] = ::dup(1 + i);
      mem_[i] = ::memfd_create(i ? "cadre-stderr" : "cadre-stdout", MFD_CLOEXEC);
      if (orig_[i] < 0 || mem_[i] < 0 || ::dup2(mem_[i], 1 + i) < 0) return false;
    }
    active_ = true;
    return true;
  }

  /// Moves what the last task wrote into out/err (at most kMaxPerTask each), forwarding all of it.
  void collect(std::string& out, std::string& err) noexcept {
    out.clear();
    err.clear();
    if (!active_) return;
    std::fflush(stdout);  // not fflush(nullptr): walking every stream costs more than the task, often
    std::fflush(stderr);
    take(0, out);
    take(1, err);
  }

 private:
  void take(int i, std::string& into) noexcept {
    const off_t n = ::lseek(1 + i, 0, SEEK_CUR);
    if (n <= 0) return;
    char buf[65536];
    for (off_t at = 0; at < n;) {
      const ssize_t r = ::pread(mem_[i], buf, std::size_t(std::min<off_t>(sizeof buf, n - at)), at);
      if (r <= 0) break;
      for (ssize_t w = 0; w < r;) {
        const ssize_t k = ::write(orig_[i], buf + w, std::size_t(r - w));
        if (k <= 0) break;
        w += k;
      }
      if (into.size() < kMaxPerTask) into.append(buf, std::size_t(std::min<ssize_t>(r, ssize_t(kMaxPerTask - into.size()))));
      at += r;
    }
    [[maybe_unused]] int rc = ::ftruncate(mem_[i], 0);
    ::lseek(1 + i, 0, SEEK_SET);
  }

  int orig_[2] = {-1, -1}, mem_[2] = {-1, -1};
  bool active_ = false;

 public:
  /// The engine's original stderr (for crash reports), or 2.
  int original_stderr() const noexcept { return orig_[1] >= 0 ? orig_[1] : 2; }
};

}  // namespace cadre::detail
