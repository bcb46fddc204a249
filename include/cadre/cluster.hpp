// cadre/cluster.hpp — Cluster: starts engine processes on this machine and owns them (RAII).
//
// The process that constructs a Cluster is the launcher (detail/launcher/launcher.hpp): it creates
// the segment, spawns the engines, reaps them (recording how each died), optionally restarts them,
// forwards their output, and on destruction stops them — even dead or busy ones — and removes the
// segment.
#pragma once

#include <cadre/client.hpp>
#include <cadre/cluster_options.hpp>
#include <cadre/detail/launcher/launcher.hpp>

#include <sys/types.h>

#include <string>
#include <vector>

namespace cadre {

/// A cluster of engine processes on this machine.
///
/// ```cpp
/// int main(int argc, char** argv) {
///   cadre::init(argc, argv);                 // engines serve here and exit
///   cadre::Cluster cluster({.engines = 4});
///   cadre::Client rc = cluster.client();
///   std::vector<pid_t> pids = rc[cadre::all].apply_sync(::getpid);
/// }                                           // engines stopped, segment removed
/// ```
class Cluster {
 public:
  /// Starts the engines and returns once every one is ready to serve. Throws argument_error for bad
  /// options, connection_error when the name is in use, and cadre::error when an engine does not
  /// start within ClusterOptions::start_timeout (its output is quoted); nothing is left behind then.
  explicit Cluster(ClusterOptions opts = {}) : launcher_(std::move(opts)) {}
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;
  ~Cluster() = default;  // the launcher stops the engines and removes the segment

  /// A new connection to this cluster.
  [[nodiscard]] Client client() const { return Client(launcher_.name()); }

  /// The cluster's name (`cadre list` shows it; `cadre::Client rc{name}` connects to it).
  const std::string& name() const noexcept { return launcher_.name(); }
  /// How many engines it has.
  int size() const noexcept { return launcher_.size(); }

  /// The engines' current pids (0 for one that is dead and not replaced).
  std::vector<pid_t> pids() const { return launcher_.pids(); }

  /// How many times engine i was restarted.
  std::uint32_t restarts(int i) const { return launcher_.restarts(i); }

  /// Blocks until `cadre stop` (or stop_request()) asks this cluster to stop.
  void wait_for_stop_request() const { launcher_.wait_for_stop_request(); }

  /// Stops the engines (SIGKILL for those that do not exit within a second), removes the segment.
  void stop() noexcept { launcher_.stop(); }

 private:
  detail::Launcher launcher_;
};

}  // namespace cadre
