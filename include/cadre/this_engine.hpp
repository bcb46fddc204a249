// cadre/this_engine.hpp — who am I? For code running on an engine.
#pragma once

#include <cadre/errors.hpp>
#include <cadre/namespace.hpp>

namespace cadre {
namespace detail {
struct EngineContext {
  int id = -1;
  Namespace* ns = nullptr;
};
inline EngineContext& engine_context() noexcept {
  static EngineContext ctx;
  return ctx;
}
}  // namespace detail

/// For code running on an engine: its id and its namespace.
namespace this_engine {

/// This engine's id (0..n-1), or -1 when called outside an engine (in a client).
inline int id() noexcept { return detail::engine_context().id; }

/// True inside an engine process.
inline bool active() noexcept { return detail::engine_context().ns != nullptr; }

/// This engine's namespace. Throws cadre::error when called outside an engine.
inline Namespace& ns() {
  auto* n = detail::engine_context().ns;
  if (!n) throw error("cadre::this_engine::ns() was called outside an engine; call it from a function that runs on one");
  return *n;
}

}  // namespace this_engine
}  // namespace cadre
