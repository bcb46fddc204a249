// cadre/client.hpp — Client: a connection to one cluster, and the way to make views of its engines.
#pragma once

#include <cadre/detail/client/client_core.hpp>
#include <cadre/detail/client/shm_transport.hpp>
#include <cadre/direct_view.hpp>
#include <cadre/engine_view.hpp>
#include <cadre/load_balanced_view.hpp>
#include <cadre/shared_vector.hpp>
#include <cadre/slice.hpp>

#include <cstdlib>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace cadre {

/// A connection to a running cluster. Copies share the connection (one client slot of the cluster's
/// four), released when the last copy and the last result made from it are gone.
///
/// ```cpp
/// cadre::Client rc;                         // $CADRE_CLUSTER, else "default" (`cadre start`)
/// cadre::EngineView e0 = rc[0];
/// cadre::DirectView even = rc[cadre::slice{0, cadre::end, 2}];
/// ```
class Client {
 public:
  /// Connects to the cluster named by $CADRE_CLUSTER, else "default". Throws connection_error, or
  /// argument_error for an invalid name.
  Client() : Client(default_cluster()) {}

  /// Connects to the named cluster. Throws connection_error when none is running, argument_error
  /// when the name is invalid (1 to 64 characters of A-Z a-z 0-9 _ - ., not starting with '.').
  explicit Client(std::string_view cluster) {
    auto t = std::make_unique<detail::ShmTransport>(cluster);
    segment_ = t->segment();
    core_ = std::make_shared<detail::ClientCore>(std::move(t));
    name_ = std::string(cluster);
  }

  /// The ids of the cluster's engines: {0, 1, ..., n-1}.
  std::vector<int> ids() const {
    std::vector<int> ids(core_->engine_count());
    std::iota(ids.begin(), ids.end(), 0);
    return ids;
  }
  /// How many engines the cluster has.
  std::size_t size() const noexcept { return core_->engine_count(); }
  /// The name of the cluster this client is connected to.
  const std::string& cluster() const noexcept { return name_; }

  /// One engine; negative indices count from the end. std::out_of_range for a bad index.
  EngineView operator[](int i) const { return EngineView(core_, detail::resolve_index(i, int(size()))); }
  /// Every engine.
  DirectView operator[](all_t) const { return DirectView(core_, ids()); }
  /// The engines a Python-style slice selects.
  DirectView operator[](const slice& s) const { return DirectView(core_, detail::resolve_slice(s, int(size()))); }
  ///@{
  /// `rc[{3, 1}]`; negative ids count from the end. std::out_of_range for a bad id or an empty list.
  DirectView operator[](const std::vector<int>& ids) const { return DirectView(core_, detail::resolve_list(ids, int(size()))); }
  DirectView operator[](std::initializer_list<int> ids) const { return (*this)[std::vector<int>(ids)]; }
  ///@}

  /// A DirectView of every engine (the same as rc[cadre::all]).
  DirectView direct_view() const { return (*this)[all]; }

  ///@{
  /// A view that runs each task on whichever engine is free: all engines, or only these
  /// (std::out_of_range for a bad id).
  LoadBalancedView load_balanced_view() const { return LoadBalancedView(core_, ids()); }
  LoadBalancedView load_balanced_view(const std::vector<int>& targets) const {
    return LoadBalancedView(core_, detail::resolve_list(targets, int(size())));
  }
  LoadBalancedView load_balanced_view(std::initializer_list<int> targets) const { return load_balanced_view(std::vector<int>(targets)); }
  ///@}

  /// One engine's line of queue_status().
  struct EngineQueue {
    int engine;             ///< the engine id
    std::uint64_t queued;   ///< tasks waiting in the engine's own queue (direct tasks)
    bool running;           ///< whether it is running a task now
    std::uint64_t done;     ///< tasks it has finished since it started
  };
  /// Per engine: tasks queued in its own queue, whether it is running one, and tasks done so far
  /// (IPython.parallel's `rc.queue_status()`). A snapshot: the engines go on meanwhile.
  std::vector<EngineQueue> queue_status() const {
    core_->poll_now();  // what has arrived counts as done
    std::vector<EngineQueue> out;
    for (std::uint32_t e = 0; e < size(); ++e) {
      const auto l = core_->transport().load(e);
      out.push_back({int(e), l.queued, l.running, l.done});
    }
    return out;
  }

  /// A zero-filled array of n numbers in the cluster's segment, to fill in place and scatter without
  /// copying. Throws capacity_error when the segment has no room.
  template <class T>
  SharedVector<T> make_shared_vector(std::size_t n) const {
    return SharedVector<T>::allocate(core_->transport(), n);
  }

  /// Waits for every task this client has sent.
  void wait() const { core_->wait_all(); }

  /// Aborts every unfinished task of this client, direct and load-balanced: queued ones never run,
  /// running ones are interrupted; their futures throw aborted_error. Returns how many it reached.
  /// (Tasks another thread is waiting for in apply_sync are left to it.)
  std::size_t abort() const {
    return core_->abort_all([](const detail::TaskState&) { return true; });
  }

  /// Tasks sent but not finished.
  std::size_t outstanding() const { return core_->pending(); }

  /// \cond internal
  // For cadre's own tools and tests.
  const std::shared_ptr<detail::ClientCore>& core() const noexcept { return core_; }
  const std::shared_ptr<detail::Segment>& segment() const noexcept { return segment_; }
  /// \endcond

  /// The cluster Client() connects to: $CADRE_CLUSTER, else "default". Throws argument_error
  /// (naming the variable) when $CADRE_CLUSTER is not a valid cluster name.
  static std::string default_cluster() {
    const char* e = std::getenv("CADRE_CLUSTER");
    if (!e || !*e) return "default";
    try {
      detail::validate_cluster_name(e);
    } catch (const argument_error& x) {
      throw argument_error(std::string("$CADRE_CLUSTER: ") + x.what());
    }
    return e;
  }

 private:
  std::shared_ptr<detail::Segment> segment_;
  std::shared_ptr<detail::ClientCore> core_;
  std::string name_;
};

}  // namespace cadre
