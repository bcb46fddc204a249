// cadre/ref.hpp — cadre::ref, an argument that names a value in each engine's namespace.
#pragma once

#include <string>
#include <utility>

namespace cadre {

/// Names a value in each engine's namespace, to pass as an argument in its place: the engine reads
/// the value from its own namespace and calls the function with it, so the value never travels.
///
/// ```cpp
/// view.push("a", 21);                                              // every engine stores "a"
/// view.apply_sync([](int a, int k) { return a * k; }, cadre::ref("a"), 2);   // {42, 42, ...}
/// ```
///
/// The name must hold a value of the parameter's type on each engine; otherwise the call fails
/// with cadre::name_error or cadre::type_error.
struct ref {
  std::string name;  ///< the name in each engine's namespace
  /// Refers to the value named n.
  explicit ref(std::string n) : name(std::move(n)) {}
};

}  // namespace cadre
