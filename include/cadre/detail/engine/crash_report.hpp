// cadre/detail/engine/crash_report.hpp — an engine's stack at the moment it crashed, carried into engine_error.
//
// The dying engine's signal handler (on an alternate stack, so stack overflows are caught too) writes
// "module+offset" frames into its EngineSlot, then lets the signal kill it. The client turns the
// frames into function names and source lines with libdw, when it is available.
#pragma once

#include <cadre/detail/shm/layout.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#ifdef CADRE_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#endif

namespace cadre::detail {

struct CrashState {
  char* buf = nullptr;       // EngineSlot::crash
  std::size_t cap = 0;
  int stderr_fd = 2;         // where the handler also prints the report
};
inline CrashState& crash_state() noexcept {
  static CrashState s;
  return s;
}

/// Async-signal-safe appends.
inline void crash_append(char* buf, std::size_t cap, std::size_t& at, const char* s) noexcept {
  while (*s && at + 1 < cap) buf[at++] = *s++;
  buf[at] = 0;
}
inline void crash_append_hex(char* buf, std::size_t cap, std::size_t& at, std::uint64_t v) noexcept {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v && n < 16);
  crash_append(buf, cap, at, "0x");
  while (n > 0 && at + 1 < cap) buf[at++] = tmp[--n];
  buf[at] = 0;
}

inline void crash_handler(int sig, siginfo_t*, void*) {
  auto& st = crash_state();
  if (st.buf) {
    void* frames[48];
    const int n = ::backtrace(frames, 48);
    std::size_t at = 0;
    crash_append(st.buf, st.cap, at, "signal ");
    crash_append(st.buf, st.cap, at, ::sigabbrev_np(sig) ? ::sigabbrev_np(sig) : "?");
    crash_append(st.buf, st.cap, at, "\n");
    for (int i = 2; i < n; ++i) {  // skip this handler and the signal trampoline
      Dl_info info{};
      if (::dladdr(frames[i], &info) && info.dli_fname) {
        crash_append(st.buf, st.cap, at, info.dli_fname);
        crash_append(st.buf, st.cap, at, "+");
        crash_append_hex(st.buf, st.cap, at, std::uint64_t(static_cast<char*>(frames[i]) - static_cast<char*>(info.dli_fbase)));
      } else {
        crash_append_hex(st.buf, st.cap, at, std::uint64_t(reinterpret_cast<std::uintptr_t>(frames[i])));
      }
      crash_append(st.buf, st.cap, at, "\n");
    }
    [[maybe_unused]] auto w = ::write(st.stderr_fd, st.buf, at);
  }
  ::raise(sig);  // SA_RESETHAND restored the default action: die of the same signal
}

/// Installs the crash handlers (engine processes only).
inline void install_crash_handlers(char* buf, std::size_t cap, int stderr_fd) noexcept {
  auto& st = crash_state();
  st.buf = buf;
  st.cap = cap;
  st.stderr_fd = stderr_fd;
  void* warm[1];
  ::backtrace(warm, 1);  // loads the unwinder now, not inside a signal handler
  static char alt_stack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof alt_stack;
  ::sigaltstack(&ss, nullptr);
  struct sigaction sa{};
  sa.sa_sigaction = crash_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP}) ::sigaction(sig, &sa, nullptr);
}

/// "function (file:line)" for offset in module, or "" when unknown.
inline std::string symbolize(const std::string& module, std::uint64_t offset) {
#ifdef CADRE_HAVE_LIBDW
  static const Dwfl_Callbacks callbacks = {dwfl_build_id_find_elf, dwfl_standard_find_debuginfo, dwfl_offline_section_address, nullptr};
  Dwfl* d = dwfl_begin(&callbacks);
  if (!d) return {};
  std::string out;
  if (Dwfl_Module* m = dwfl_report_elf(d, module.c_str(), module.c_str(), -1, 0, false)) {
    dwfl_report_end(d, nullptr, nullptr);
    const GElf_Addr pc = offset ? offset - 1 : 0;  // a return address: look up the call
    if (const char* name = dwfl_module_addrname(m, pc)) {
      int status = 0;
      char* dem = abi::__cxa_demangle(name, nullptr, nullptr, &status);
      out = status == 0 && dem ? dem : name;
      std::free(dem);
    }
    if (Dwfl_Line* line = dwfl_module_getsrc(m, pc)) {
      int lineno = 0;
      if (const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr))
        out += std::string(out.empty() ? "" : " ") + "(" + file + ":" + std::to_string(lineno) + ")";
    }
  }
  dwfl_end(d);
  return out;
#else
  (void)module, (void)offset;
  return {};
#endif
}

/// The crash report with each "module+0xoffset" frame followed by its symbol, when known.
inline std::string symbolize_report(const std::string& raw) {
  std::string out;
  std::size_t start = 0;
  int frame = 0;
  while (start < raw.size()) {
    std::size_t nl = raw.find('\n', start);
    if (nl == std::string::npos) nl = raw.size();
    const std::string line = raw.substr(start, nl - start);
    start = nl + 1;
    const auto plus = line.rfind("+0x");
    if (plus == std::string::npos) {
      out += line + "\n";
      continue;
    }
    const std::string module = line.substr(0, plus);
    const std::uint64_t off = std::strtoull(line.c_str() + plus + 3, nullptr, 16);
    const std::string sym = symbolize(module, off);
    out += "  #" + std::to_string(frame++) + " ";
    if (sym.empty()) out += line;
    else out.append(sym).append(" in ").append(module);
    out += '\n';
  }
  return out;
}

}  // namespace cadre::detail
