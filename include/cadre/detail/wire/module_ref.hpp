// cadre/detail/wire/module_ref.hpp — code addresses as (module, build-id, offset), portable between processes.
//
// A function pointer means nothing in another process, but "offset X in the module whose GNU build-id
// is B" does: the engine finds a loaded module with build-id B (or dlopens it by path and checks B),
// adds its load base, and gets the same function. ASLR and PIE are harmless; a rebuilt binary is
// caught by the build-id check instead of jumping into the wrong code.
#pragma once

#include <cadre/errors.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <algorithm>

namespace cadre::detail {

struct BuildId {
  std::array<std::uint8_t, 32> bytes{};
  std::uint8_t len = 0;
  bool operator==(const BuildId& o) const noexcept {
    return len == o.len && std::memcmp(bytes.data(), o.bytes.data(), len) == 0;
  }
  std::string hex() const {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < len; ++i) s += d[bytes[i] >> 4], s += d[bytes[i] & 15];
    return s;
  }
};

/// A loaded module: its path ("" for the main executable), load base and build-id.
struct ModuleInfo {
  std::string path;
  std::uintptr_t base = 0;
  BuildId id;
  bool main = false;
};

/// Reads the NT_GNU_BUILD_ID note from a module's program headers.
inline BuildId read_build_id(const dl_phdr_info* info) {
  BuildId id;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    auto* p = reinterpret_cast<const std::uint8_t*>(info->dlpi_addr + ph.p_vaddr);
    auto* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      auto* n = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const auto* name = p + sizeof(ElfW(Nhdr));
      const auto* desc = name + ((n->n_namesz + 3) & ~3u);
      if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
        id.len = std::uint8_t(std::min<std::size_t>(n->n_descsz, id.bytes.size()));
        std::memcpy(id.bytes.data(), desc, id.len);
        return id;
      }
      p = desc + ((n->n_descsz + 3) & ~3u);
    }
  }
  return id;
}

/// Every module loaded in this process.
inline std::vector<ModuleInfo> loaded_modules() {
  std::vector<ModuleInfo> out;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto& v = *static_cast<std::vector<ModuleInfo>*>(data);
        ModuleInfo m;
        m.path = info->dlpi_name ? info->dlpi_name : "";
        m.base = info->dlpi_addr;
        m.id = read_build_id(info);
        m.main = v.empty();  // the first entry is the main program
        v.push_back(std::move(m));
        return 0;
      },
      &out);
  return out;
}

/// The main executable's build-id.
inline const BuildId& main_build_id() {
  static const BuildId id = loaded_modules().front().id;
  return id;
}

/// The absolute path of the main executable.
inline std::string main_executable_path() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, std::size_t(n)) : std::string();
}

/// Demangled name of a symbol or type, for messages; the mangled name when it does not demangle, ""
/// for null. A clone the compiler made (`_Z3fooi.cold`, `.isra.0`, `.constprop.0`) keeps its suffix
/// as `foo(int) [clone .cold]`.
inline std::string demangle(const char* mangled) {
  if (!mangled) return {};
  const auto try_demangle = [](const char* name, std::string& out) {
    int status = 0;
    char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (status == 0 && d) out = d;
    std::free(d);
    return status == 0 && d;
  };
  std::string s;
  if (try_demangle(mangled, s)) return s;
  const std::string_view m = mangled;
  if (!m.starts_with("_Z")) return std::string(m);
  if (const auto dot = m.find('.'); dot != std::string_view::npos && try_demangle(std::string(m.substr(0, dot)).c_str(), s))
    return s + " [clone " + std::string(m.substr(dot)) + "]";
  // libstdc++'s demangler (GCC 12) gives up on some symbols, such as a generic lambda taking a pack
  // inside a template, or a template instantiated with one. Rather than the mangled name: the longest
  // start of the symbol that demangles (the template, without its arguments: "std::__invoke_impl<...>"),
  // or else the function the entity is local to ("cadre::detail::f(int)::{lambda}").
  std::string local;
  for (std::string z(m); z.starts_with("_Z");) {
    for (std::size_t k = z.size() - 1; k > 2; --k)
      if (try_demangle(z.substr(0, k).c_str(), s)) return s.append(z[k] == 'I' ? "<...>" : "").append(local);
    if (!z.starts_with("_ZZ")) break;
    z.erase(2, 1);  // "_ZZ<function>E<entity>": look at <function>
    local = "::{lambda}";
  }
  return std::string(m);
}

/// Name of a function pointer for messages: its symbol if it has one, else its module and offset.
inline std::string describe_function(const void* p) {
  Dl_info info{};
  if (::dladdr(p, &info) && info.dli_sname) return demangle(info.dli_sname);
  if (info.dli_fname) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "+0x%zx", std::size_t(static_cast<const char*>(p) - static_cast<const char*>(info.dli_fbase)));
    return std::string("function at ") + info.dli_fname + buf;
  }
  return "function at an unknown address";
}

/// Where a code address lives.
struct CodeRef {
  BuildId id;
  std::uint64_t offset = 0;
  bool main = false;  // in the main executable
  std::string path;   // module path, for dlopen on the far side (empty for the main executable)
};

/// Finds the module holding `addr`. Throws function_error when it is in no module (e.g. generated code).
inline CodeRef locate(const void* addr, std::string_view what) {
  Dl_info info{};
  link_map* lm = nullptr;
  if (::dladdr1(addr, &info, reinterpret_cast<void**>(&lm), RTLD_DL_LINKMAP) == 0 || !lm)
    throw function_error(std::string(what) + " is not inside any loaded module, so engines cannot find it; "
                         "pass a function defined in the program or in a shared library");
  static std::mutex mu;
  static std::unordered_map<std::uintptr_t, ModuleInfo> cache;  // load bias -> module
  const std::uintptr_t bias = lm->l_addr;  // the same value dl_iterate_phdr reports as dlpi_addr
  std::lock_guard lock(mu);
  auto it = cache.find(bias);
  if (it == cache.end()) {
    ModuleInfo found;
    found.path = info.dli_fname ? info.dli_fname : "";
    found.base = bias;
    for (auto& m : loaded_modules())
      if (m.base == bias) {
        found = m;
        break;
      }
    it = cache.emplace(bias, std::move(found)).first;
  }
  const ModuleInfo& m = it->second;
  if (m.id.len == 0)
    throw function_error(std::string(what) + " lives in '" + m.path + "', which has no GNU build-id; link it with -Wl,--build-id");
  CodeRef r;
  r.id = m.id;
  r.offset = reinterpret_cast<std::uintptr_t>(addr) - bias;
  r.main = m.main;
  r.path = m.main ? std::string() : m.path;
  return r;
}

/// Resolves a CodeRef in this process: a loaded module with the same build-id, else dlopen(path) and
/// check its build-id. Throws function_error naming the module when neither works.
inline void* resolve(const CodeRef& ref) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::uintptr_t> bases;  // build-id bytes -> load base
  const std::string key(reinterpret_cast<const char*>(ref.id.bytes.data()), ref.id.len);
  std::lock_guard lock(mu);
  auto it = bases.find(key);
  if (it == bases.end()) {
    for (const auto& m : loaded_modules())
      if (m.id == ref.id) {
        it = bases.emplace(key, m.base).first;
        break;
      }
    if (it == bases.end() && !ref.path.empty()) {
      if (void* h = ::dlopen(ref.path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
        (void)h;  // kept open for the life of the engine
        for (const auto& m : loaded_modules())
          if (m.id == ref.id) {
            it = bases.emplace(key, m.base).first;
            break;
          }
        if (it == bases.end())
          throw function_error("'" + ref.path + "' on this engine has another build-id than the client's (" + ref.id.hex() +
                               "); rebuild so client and engines use the same library");
      } else {
        throw function_error("engine cannot load '" + ref.path + "': " + ::dlerror());
      }
    }
    if (it == bases.end())
      throw function_error("this engine does not run the client's executable (build-id " + ref.id.hex() +
                           "), so it cannot call the client's own functions; start the cluster with `cadre start --engine " +
                           "<your program>`, use an embedded cadre::Cluster, or export the function from a shared library "
                           "with CADRE_EXPORT");
  }
  return reinterpret_cast<void*>(it->second + ref.offset);
}

/// The GNU build-id of an ELF file on disk (empty when it has none or is not ELF64).
inline BuildId build_id_of_file(const std::string& path) {
  BuildId id;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return id;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  // Exactly n bytes at offset, or false.
  const auto read_at = [fd](void* to, std::size_t n, std::uint64_t offset) {
    return ::pread(fd, to, n, off_t(offset)) == ssize_t(n);
  };
  ElfW(Ehdr) eh{};
  if (!read_at(&eh, sizeof eh, 0) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum > 256)
    return id;
  std::vector<ElfW(Phdr)> ph(eh.e_phnum);
  if (!read_at(ph.data(), ph.size() * sizeof(ElfW(Phdr)), eh.e_phoff)) return id;
  for (const auto& p : ph) {
    if (p.p_type != PT_NOTE || p.p_filesz > (1u << 16)) continue;
    std::vector<std::uint8_t> notes(p.p_filesz);
    if (!read_at(notes.data(), notes.size(), p.p_offset)) continue;
    std::size_t at = 0;
    while (at + sizeof(ElfW(Nhdr)) <= notes.size()) {
      ElfW(Nhdr) n;
      std::memcpy(&n, notes.data() + at, sizeof n);
      const std::size_t name_at = at + sizeof n, desc_at = name_at + ((n.n_namesz + 3) & ~3u);
      if (desc_at + n.n_descsz > notes.size()) break;
      if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 && std::memcmp(notes.data() + name_at, "GNU", 4) == 0) {
        id.len = std::uint8_t(std::min<std::size_t>(n.n_descsz, id.bytes.size()));
        std::memcpy(id.bytes.data(), notes.data() + desc_at, id.len);
        return id;
      }
      at = desc_at + ((n.n_descsz + 3) & ~3u);
    }
  }
  return id;
}

}  // namespace cadre::detail
