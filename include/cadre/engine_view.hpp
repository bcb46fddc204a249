// cadre/engine_view.hpp — EngineView: one engine; results are single values.
#pragma once

#include <cadre/view.hpp>


#include <ostream>
#include <string>

namespace cadre {

/// One engine of a cluster, as `rc[0]` or `rc[-1]`.
///
/// ```cpp
/// cadre::EngineView e0 = rc[0];
/// pid_t p = e0.apply_sync(::getpid);
/// e0["a"] = 9;
/// int a = e0.pull<int>("a");
/// ```
class EngineView : public BasicView<true> {
 public:
  /// A view of no engine; assign one from a Client (`rc[0]`) before use.
  EngineView() = default;
  /// \cond internal
  // Client makes views; the id is checked there.
  EngineView(std::shared_ptr<detail::ClientCore> core, int id) : BasicView(detail::Targets(std::move(core), {id})) {}
  /// \endcond

  /// This engine's id.
  int id() const { return targets().at(0); }
};

/// "<EngineView 2>" (fmt: <cadre/fmt.hpp>).
inline std::string to_string(const EngineView& v) { return "<EngineView " + std::to_string(v.id()) + ">"; }

/// Prints to_string(v).
inline std::ostream& operator<<(std::ostream& os, const EngineView& v) { return os << to_string(v); }

}  // namespace cadre
