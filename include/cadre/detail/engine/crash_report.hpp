// cadre/detail/engine/crash_report.hpp — an engine's stack at the moment it crashed, carried into engine_error.
//
// The dying engine's signal handler (on an alternate stack, so stack overflows are caught too) writes
// "module+offset" frames into its EngineSlot, then lets the signal kill it. The client turns the
// frames into function names and source lines with libdw, when it is available, and shows the user's
// frames first and cadre's engine under them in one line.
#pragma once

#include <cadre/detail/shm/layout.hpp>
#include <cadre/detail/wire/module_ref.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

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

inline void crash_handler(int sig, siginfo_t*, void* context) {
  auto& st = crash_state();
  if (st.buf) {
    void* frames[48];
    const int n = ::backtrace(frames, 48);
    std::size_t at = 0;
    crash_append(st.buf, st.cap, at, "signal ");
    crash_append(st.buf, st.cap, at, ::sigabbrev_np(sig) ? ::sigabbrev_np(sig) : "?");
    crash_append(st.buf, st.cap, at, "\n");
    // The stack starts where the signal hit: the frame at the interrupted pc. Before it lie this
    // handler, the signal trampoline and whatever a sanitizer's signal interception adds.
    int first = n > 2 ? 2 : n;
#if defined(__x86_64__)
    const auto pc = reinterpret_cast<void*>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
    const auto pc = reinterpret_cast<void*>(static_cast<ucontext_t*>(context)->uc_mcontext.pc);
#else
    void* const pc = nullptr;
#endif
    for (int i = 0; i < n; ++i)
      if (frames[i] == pc) {
        first = i;
        break;
      }
    for (int i = first; i < n; ++i) {
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

/// The qualified name of a demangled function, without return type, template arguments or
/// parameters: "void std::__invoke_impl<void, F>(std::__invoke_other, F&&)" gives "std::__invoke_impl".
inline std::string function_name(const std::string& demangled) {
  std::string name;
  int depth = 0;
  for (std::size_t i = 0; i < demangled.size(); ++i) {
    const char c = demangled[i];
    if (depth == 0 && demangled.compare(i, 8, "operator") == 0) {
      const std::size_t params = demangled.find('(', i + (demangled.compare(i, 10, "operator()") == 0 ? 10 : 8));
      return name + demangled.substr(i, params == std::string::npos ? std::string::npos : params - i);
    }
    if (depth == 0 && demangled.compare(i, 21, "(anonymous namespace)") == 0) {
      name += "(anonymous namespace)";
      i += 20;
    } else if (depth == 0 && c == '(' && name != "decltype") {
      break;  // the parameters (not those of a return type "decltype(auto)")
    } else if (c == '<' || c == '(' || c == '[' || c == '{') {
      ++depth;
    } else if (c == '>' || c == ')' || c == ']' || c == '}') {
      depth -= depth > 0;
    } else if (depth == 0 && c == ' ') {
      name.clear();  // what came before was the return type
    } else if (depth == 0) {
      name += c;
    }
  }
  return name;
}

/// True for a frame of cadre's engine rather than of the user's code, by its function's name: cadre's
/// own functions (the engine loop, the call thunks, cadre::init), the standard library's call
/// machinery they go through (std::invoke, std::__invoke_impl, std::apply, std::function), and the
/// program's start (main, which in an engine only runs the engine loop, __libc_start_main, _start).
inline bool is_engine_frame(const std::string& function) {
  const std::string n = function_name(function);
  for (const char* prefix : {"cadre::", "std::__invoke", "std::invoke", "std::__apply", "std::apply", "std::_Function_handler",
                             "std::function", "__libc_start"})
    if (n.rfind(prefix, 0) == 0) return true;
  return n == "main" || n == "_start";
}

/// One frame of a crash report, symbolized.
struct CrashFrame {
  std::string raw;       // "module+0xoffset", as the engine wrote it
  std::string module;
  std::string function;  // demangled; "" when unknown
  std::string source;    // "file:line"; "" when unknown
};

#ifdef CADRE_HAVE_LIBDW
/// Each module's debug information, read once per report.
class Symbolizer {
 public:
  Symbolizer() = default;
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;
  ~Symbolizer() {
    for (auto& [path, m] : modules_)
      if (m.first) dwfl_end(m.first);
  }

  void fill(CrashFrame& f, std::uint64_t offset) {
    Dwfl_Module* m = module(f.module);
    if (!m) return;
    const GElf_Addr pc = offset ? offset - 1 : 0;  // a return address: look up the call
    // Only C++ symbols: a C name such as "f" would otherwise demangle as a type ("float").
    if (const char* name = dwfl_module_addrname(m, pc)) f.function = std::strncmp(name, "_Z", 2) == 0 ? demangle(name) : name;
    if (Dwfl_Line* line = dwfl_module_getsrc(m, pc)) {
      int lineno = 0;
      if (const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr))
        f.source = std::string(file) + ":" + std::to_string(lineno);
    }
  }

 private:
  Dwfl_Module* module(const std::string& path) {
    auto it = modules_.find(path);
    if (it == modules_.end()) {
      static const Dwfl_Callbacks callbacks = {dwfl_build_id_find_elf, dwfl_standard_find_debuginfo, dwfl_offline_section_address, nullptr};
      Dwfl* d = dwfl_begin(&callbacks);
      Dwfl_Module* m = d ? dwfl_report_elf(d, path.c_str(), path.c_str(), -1, 0, false) : nullptr;
      if (d) dwfl_report_end(d, nullptr, nullptr);
      it = modules_.emplace(path, std::pair{d, m}).first;
    }
    return it->second.second;
  }

  std::map<std::string, std::pair<Dwfl*, Dwfl_Module*>> modules_;
};
#endif

/// The frames of a raw report ("module+0xoffset" lines), symbolized when libdw is available.
inline std::vector<CrashFrame> symbolize_frames(const std::string& raw) {
  std::vector<CrashFrame> frames;
#ifdef CADRE_HAVE_LIBDW
  Symbolizer symbols;
#endif
  for (std::size_t start = 0; start < raw.size();) {
    std::size_t nl = raw.find('\n', start);
    if (nl == std::string::npos) nl = raw.size();
    CrashFrame f{raw.substr(start, nl - start), {}, {}, {}};
    start = nl + 1;
    if (f.raw.empty() || f.raw.rfind("signal ", 0) == 0) continue;
    const auto plus = f.raw.rfind("+0x");
    if (plus == std::string::npos) {  // an address in no module
      frames.push_back(std::move(f));
      continue;
    }
    f.module = f.raw.substr(0, plus);
#ifdef CADRE_HAVE_LIBDW
    symbols.fill(f, std::strtoull(f.raw.c_str() + plus + 3, nullptr, 16));
#endif
    frames.push_back(std::move(f));
  }
  return frames;
}

/// The crash report for a person: its first line ("signal SIGSEGV"), then the user's frames, from the
/// one the signal hit down to the user's function that cadre called, each "function (file:line)", and
/// below them one line for all of cadre's engine under that function (is_engine_frame). A crash inside
/// cadre itself (no frame of the user's) shows every frame.
inline std::string symbolize_report(const std::string& raw) {
  const std::string first = raw.substr(0, raw.find('\n'));
  std::string out = first.rfind("signal ", 0) == 0 ? first + "\n" : "";
  const std::vector<CrashFrame> frames = symbolize_frames(raw);
  // The engine's frames are the bottom of the stack: from _start up to the call of the user's function.
  std::size_t engine = frames.size();
  while (engine > 0 && (frames[engine - 1].function.empty() || is_engine_frame(frames[engine - 1].function))) --engine;
  if (engine == 0) engine = frames.size();
  for (std::size_t i = 0; i < engine;) {
    const CrashFrame& f = frames[i];
    out += "  #" + std::to_string(i) + " ";
    if (f.function.empty() && f.source.empty()) out += f.raw;
    else if (f.source.empty()) out += f.function + " in " + f.module;
    else out += (f.function.empty() ? "?" : f.function) + " (" + f.source + ")";
    out += '\n';
    std::size_t next = i + 1;  // a recursion: the same function again and again, in one line
    while (next < engine && !f.function.empty() && frames[next].function == f.function) ++next;
    if (next - i > 2) out += "  ... " + std::to_string(next - i - 1) + " more calls of " + function_name(f.function) + "\n";
    i = next - i > 2 ? next : i + 1;
  }
  if (engine < frames.size()) {
    const auto name = [](const CrashFrame& f) { return f.function.empty() ? f.raw : function_name(f.function); };
    const std::size_t n = frames.size() - engine;
    out += "  ... " + std::to_string(n) + " frame" + (n == 1 ? "" : "s") + " of cadre's engine (" + name(frames[engine]) +
           (n > 1 ? " ... " + name(frames.back()) : "") + ")\n";
  }
  return out;
}

}  // namespace cadre::detail
