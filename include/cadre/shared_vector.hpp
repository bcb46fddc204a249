// cadre/shared_vector.hpp — SharedVector<T>: an array that lives in the cluster's segment, scattered without copying.
#pragma once

#include <cadre/detail/shm/layout.hpp>
#include <cadre/detail/shm/segment.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace cadre {

/// A contiguous array of T in the cluster's shared segment. Scattering it hands each engine a view of
/// its slice: no byte moves, so the cost does not grow with the size. Copies of the handle share the
/// array; the memory is freed when the last handle and the last engine view are gone.
///
///     cadre::SharedVector<double> v = rc.make_shared_vector<double>(1 << 20);
///     std::iota(v.begin(), v.end(), 0.0);
///     dview.scatter("v", v);                 // engines: ns.view<std::vector<double>>("v")
template <class T>
class SharedVector {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "cadre::SharedVector holds numbers");

 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  SharedVector() = default;

  std::size_t size() const noexcept { return h_ ? h_->n : 0; }
  bool empty() const noexcept { return size() == 0; }
  T* data() noexcept { return h_ ? h_->data : nullptr; }
  const T* data() const noexcept { return h_ ? h_->data : nullptr; }
  T& operator[](std::size_t i) noexcept { return data()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data()[i]; }
  T& at(std::size_t i) {
    if (i >= size()) throw std::out_of_range("SharedVector index " + std::to_string(i) + " >= size " + std::to_string(size()));
    return data()[i];
  }
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size(); }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + size(); }
  operator std::span<T>() noexcept { return {data(), size()}; }
  operator std::span<const T>() const noexcept { return {data(), size()}; }

  /// The segment block that holds the array, and the segment (for scatter).
  std::uint64_t block() const noexcept { return h_ ? h_->block : 0; }
  /// The segment holding the array (nullptr for an empty handle).
  const detail::Segment* segment() const noexcept { return h_ ? h_->seg.get() : nullptr; }

  /// Allocates n zeroed elements in seg. Throws capacity_error when the segment has no room.
  static SharedVector allocate(const std::shared_ptr<detail::Segment>& seg, std::size_t n) {
    if (n > (std::size_t(1) << 48) / sizeof(T)) throw capacity_error("SharedVector of " + std::to_string(n) + " elements is too large");
    auto h = std::make_shared<Holder>();
    h->block = seg->alloc_block(n * sizeof(T), detail::kSharedTag, detail::kNsRef);
    h->seg = seg;
    h->data = reinterpret_cast<T*>(h->seg->block_data(h->block));
    h->n = n;
    std::memset(static_cast<void*>(h->data), 0, n * sizeof(T));
    SharedVector v;
    v.h_ = std::move(h);
    return v;
  }

 private:
  struct Holder {
    std::shared_ptr<detail::Segment> seg;
    std::uint64_t block = 0;
    T* data = nullptr;
    std::size_t n = 0;
    ~Holder() {
      if (seg && block) {
        try {
          seg->release(block, detail::kNsRef);
        } catch (...) {
        }
      }
    }
  };
  std::shared_ptr<Holder> h_;
};

template <class T>
inline constexpr bool is_shared_vector_v = false;
template <class T>
inline constexpr bool is_shared_vector_v<SharedVector<T>> = true;

}  // namespace cadre
