// cadre/detail/wire/exports.hpp — the registry behind CADRE_EXPORT: functions whose thunks live in a shared library.
//
// A generic engine does not contain the client's thunks, but it does load the library that defines
// an exported function, and with it the thunk that CADRE_EXPORT instantiated there. The client looks
// the function up here and sends that thunk's code reference instead of its own.
#pragma once

#include <cadre/detail/wire/call.hpp>

#include <mutex>
#include <unordered_map>

namespace cadre::detail {

inline std::mutex& export_mutex() {
  static std::mutex m;
  return m;
}
inline std::unordered_map<const void*, Thunk>& export_registry() {
  static std::unordered_map<const void*, Thunk> r;
  return r;
}

/// Records fn's thunk; returns true so that CADRE_EXPORT can run it as a static initializer.
inline bool register_export(const void* fn, Thunk t) {
  std::lock_guard lock(export_mutex());
  export_registry()[fn] = t;
  return true;
}

/// The thunk exported for fn, or nullptr when fn was not exported.
[[nodiscard]] inline Thunk exported_thunk(const void* fn) {
  std::lock_guard lock(export_mutex());
  auto it = export_registry().find(fn);
  return it == export_registry().end() ? nullptr : it->second;
}

}  // namespace cadre::detail
