// cadre/detail/engine/output_capture.hpp — what a task prints on its engine, captured for that task's future.
//
// The engine points its stdout and stderr at two memfds. After each task it reads what was written,
// forwards it to the original streams (the launcher's "[engine N]" lines or log file), and rewinds.
// A memfd never blocks the writer, however much a task prints.
//
// Asking the kernel where a memfd's offset is costs a system call, ~1 µs on a VM: more than the rest
// of a hot round trip (bench/roundtrip_bench.cpp). So each memfd is a sparse file of kWindow bytes
// whose first bytes are also mapped: a task that printed nothing leaves them zero, and only a task
// whose output shows there pays for lseek/pread/punch. Output that starts with 64 NUL bytes is not
// seen by that probe; sweep(), called when the engine idles, forwards it to the original streams.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <stdio_ext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
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
      if (orig_[i] < 0 || mem_[i] < 0) return false;
      if (::ftruncate(mem_[i], kWindow) == 0) {
        void* p = ::mmap(nullptr, kProbeBytes, PROT_READ, MAP_SHARED, mem_[i], 0);
        if (p != MAP_FAILED) probe_[i] = static_cast<const std::byte*>(p);
      }
      if (::dup2(mem_[i], 1 + i) < 0) return false;
    }
    active_ = true;
    return true;
  }

  /// Moves what the last task wrote into out/err (at most kMaxPerTask each), forwarding all of it.
  void collect(std::string& out, std::string& err) noexcept {
    out.clear();
    err.clear();
    if (!active_) return;
    // Not fflush(nullptr): walking every stream costs more than the task, often. And only a stream with
    // bytes in its buffer: __fpending reads the buffer's pointers, fflush locks the stream to find none.
    if (__fpending(stdout) != 0) std::fflush(stdout);
    if (__fpending(stderr) != 0) std::fflush(stderr);
    if (printed(0)) take(0, &out);
    if (printed(1)) take(1, &err);
  }

  /// Forwards whatever the probe missed (output starting with NUL bytes); costs two system calls.
  void sweep() noexcept {
    if (!active_) return;
    take(0, nullptr);
    take(1, nullptr);
  }

 private:
  static constexpr off_t kWindow = off_t(1) << 32;        // sparse: only written pages use memory
  static constexpr std::size_t kProbeBytes = 4096;

  /// False only when stream i surely has nothing since the last take (its first bytes are still zero).
  bool printed(int i) const noexcept {
    if (!probe_[i]) return true;
    std::uint64_t w[8];
    std::memcpy(w, probe_[i], sizeof w);
    return (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0;
  }

  void take(int i, std::string* into) noexcept {
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
      if (into && into->size() < kMaxPerTask)
        into->append(buf, std::size_t(std::min<ssize_t>(r, ssize_t(kMaxPerTask - into->size()))));
      at += r;
    }
    // Zero what was written (the probe reads zeros again) and rewind; past the window, start over.
    if (n > kWindow || ::fallocate(mem_[i], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, n) != 0) {
      [[maybe_unused]] int rc = ::ftruncate(mem_[i], 0);
      rc = ::ftruncate(mem_[i], kWindow);
    }
    ::lseek(1 + i, 0, SEEK_SET);
  }

  int orig_[2] = {-1, -1}, mem_[2] = {-1, -1};
  const std::byte* probe_[2] = {nullptr, nullptr};
  bool active_ = false;

 public:
  /// The engine's original stderr (for crash reports), or 2.
  int original_stderr() const noexcept { return orig_[1] >= 0 ? orig_[1] : 2; }
};

}  // namespace cadre::detail
