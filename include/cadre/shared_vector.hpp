// cadre/shared_vector.hpp — SharedVector<T>: an array that lives in the cluster's segment, scattered without copying.
#pragma once

#include <cadre/detail/client/transport.hpp>
#include <cadre/errors.hpp>

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
/// ```cpp
/// cadre::SharedVector<double> v = rc.make_shared_vector<double>(1 << 20);
/// std::iota(v.begin(), v.end(), 0.0);
/// dview.scatter("v", v);                 // engines: ns.view<std::vector<double>>("v")
/// ```
template <class T>
class SharedVector {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "cadre::SharedVector holds numbers");

 public:
  ///@{
  /// The standard container types: the elements are contiguous T.
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;
  ///@}

  /// An empty handle (size 0, data() nullptr); Client::make_shared_vector() makes real ones.
  SharedVector() = default;

  /// The number of elements.
  std::size_t size() const noexcept { return r_ ? r_->bytes.size() / sizeof(T) : 0; }
  /// True for an empty handle or an array of no elements.
  bool empty() const noexcept { return size() == 0; }
  ///@{
  /// The first element, in the segment (nullptr for an empty handle).
  T* data() noexcept { return r_ ? reinterpret_cast<T*>(r_->bytes.data()) : nullptr; }
  const T* data() const noexcept { return r_ ? reinterpret_cast<const T*>(r_->bytes.data()) : nullptr; }
  ///@}
  ///@{
  /// Element i, unchecked.
  T& operator[](std::size_t i) noexcept { return data()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data()[i]; }
  ///@}
  /// Element i; std::out_of_range when i >= size().
  T& at(std::size_t i) {
    if (i >= size()) throw std::out_of_range("SharedVector index " + std::to_string(i) + " >= size " + std::to_string(size()));
    return data()[i];
  }
  ///@{
  /// Iteration over the elements, as for a std::vector.
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size(); }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + size(); }
  ///@}
  ///@{
  /// The elements as a span, for functions that take one.
  operator std::span<T>() noexcept { return {data(), size()}; }
  operator std::span<const T>() const noexcept { return {data(), size()}; }
  ///@}

  /// \cond internal
  /// How records name the array (0 for an empty handle).
  std::uint64_t block() const noexcept { return r_ ? r_->handle : 0; }
  /// The memory behind the array, as the transport that made it sees it (nullptr for an empty handle).
  const detail::SharedRegion* region() const noexcept { return r_.get(); }

  /// n zeroed elements from transport t. Throws capacity_error when it has no room.
  static SharedVector allocate(detail::Transport& t, std::size_t n) {
    if (n > (std::size_t(1) << 48) / sizeof(T)) throw capacity_error("SharedVector of " + std::to_string(n) + " elements is too large");
    SharedVector v;
    v.r_ = t.allocate_shared(n * sizeof(T));
    return v;
  }
  /// \endcond

 private:
  std::shared_ptr<detail::SharedRegion> r_;
};

/// True for SharedVector<T>: DirectView::scatter hands such an array's slices to the engines
/// instead of copying it.
template <class T>
inline constexpr bool is_shared_vector_v = false;
/// \cond internal
template <class T>
inline constexpr bool is_shared_vector_v<SharedVector<T>> = true;
/// \endcond

}  // namespace cadre
