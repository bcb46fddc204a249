// examples/remote_iteration.cpp — the seed's linked exercise: iterate over data that stays on the engines.
//
// A large sequence is scattered over the engines; the client then walks it with an ordinary range-for
// without ever pulling it all back: a remote generator fetches the next batch from the engine that
// holds it while the current batch is being consumed, so results arrive as they come.
// Run: build/examples/remote_iteration [n]
#include <cadre/cadre.hpp>

#include <fmt/core.h>

#include <cstdint>
#include <numeric>
#include <optional>

namespace {

/// One batch of an engine's chunk: elements [start, start + count) of its "data", squared.
std::vector<std::int64_t> squares(cadre::Namespace& ns, std::size_t start, std::size_t count) {
  auto data = ns.view<std::vector<std::int64_t>>("data");  // in place
  std::vector<std::int64_t> out;
  for (std::size_t i = start; i < std::min(data.size(), start + count); ++i) out.push_back(data[i] * data[i]);
  return out;
}

std::size_t chunk_size(cadre::Namespace& ns) { return ns.view<std::vector<std::int64_t>>("data").size(); }

/// An input range over the engines' chunks of "data", in engine order, batch by batch, with the next
/// batch requested before the current one is consumed.
class RemoteSquares {
 public:
  RemoteSquares(const cadre::Client& rc, const cadre::DirectView& view, std::size_t batch) : batch_(batch) {
    for (int e : view.targets()) engines_.push_back(rc[e]);
    sizes_ = view.apply_sync(chunk_size);
  }

  class iterator {
   public:
    using value_type = std::int64_t;
    using difference_type = std::ptrdiff_t;
    explicit iterator(RemoteSquares* r) : r_(r) {
      request();
      load();
    }
    std::int64_t operator*() const { return batch_[pos_]; }
    iterator& operator++() {
      if (++pos_ == batch_.size()) load();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.r_ == nullptr; }

   private:
    // Asks for the batch after the last one requested (engine_, next_), if any is left.
    void request() {
      while (engine_ < r_->sizes_.size() && next_ >= r_->sizes_[engine_]) ++engine_, next_ = 0;
      if (engine_ == r_->sizes_.size()) {
        pending_.reset();
        return;
      }
      pending_ = r_->engines_[engine_].apply_async(squares, next_, r_->batch_);
      next_ += r_->batch_;
    }
    void load() {
      pos_ = 0;
      for (;;) {
        if (!pending_) {
          r_ = nullptr;
          return;
        }
        batch_ = pending_->get();
        request();  // the next batch is computed while this one is consumed
        if (!batch_.empty()) return;
      }
    }
    RemoteSquares* r_;
    std::vector<std::int64_t> batch_;
    std::size_t pos_ = 0, engine_ = 0, next_ = 0;
    std::optional<cadre::AsyncResult<std::vector<std::int64_t>>> pending_;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  std::vector<cadre::EngineView> engines_;
  std::size_t batch_;
  std::vector<std::size_t> sizes_;
};

}  // namespace

int main(int argc, char** argv) try {
  cadre::init(argc, argv);
  const std::size_t n = argc > 1 ? std::size_t(std::atol(argv[1])) : 10'000'000;

  cadre::Cluster cluster({.engines = 4});
  cadre::Client rc = cluster.client();
  cadre::DirectView dview = rc[cadre::all];

  std::vector<std::int64_t> data(n);
  std::iota(data.begin(), data.end(), 0);
  dview.scatter("data", data).get();
  data.clear();
  data.shrink_to_fit();  // from here on, the data lives only on the engines

  RemoteSquares remote(rc, dview, 100'000);
  std::int64_t i = 0;
  std::uint64_t sum = 0;  // wraps modulo 2^64: a checksum, not a total
  bool ok = true;
  for (std::int64_t sq : remote) {
    ok &= sq == i * i;
    sum += std::uint64_t(sq);
    ++i;
  }
  ok &= std::size_t(i) == n;
  fmt::print("iterated {} squares held by {} engines, batch by batch; checksum {}\n", i, rc.size(), sum);
  fmt::print("{}\n", ok ? "remote iteration: ok" : "remote iteration: MISMATCH");
  return ok ? 0 : 1;
} catch (const std::exception& e) {  // unwinding runs ~Cluster: engines stopped, segment removed
  fmt::print(stderr, "remote_iteration: {}\n", e.what());
  return 1;
}
