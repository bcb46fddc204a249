// cadre/detail/wire/eigen_codec.hpp — the codec and raw-array traits of Eigen::Matrix and Eigen::Array.
//
// Stored raw like std::vector (codec.hpp): [u64 rows][u64 cols][elements, in storage order], so an
// engine reads a matrix in place through an Eigen::Map. Included by <cadre/eigen.hpp> only.
#pragma once

#include <cadre/codec.hpp>
#include <cadre/detail/engine/thread_caps.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <string>

namespace cadre::detail::codec_impl {

static_assert(Eigen::Dynamic == kDynamic, "cadre's kDynamic must be Eigen::Dynamic");
static_assert(std::is_same_v<Eigen::Index, std::ptrdiff_t>, "cadre's dimension checks assume Eigen::Index is std::ptrdiff_t");

template <class M, const char* Tag>
struct eigen_raw_traits : std::true_type {
  using element = typename M::Scalar;
  static constexpr bool is_eigen = true;
  static constexpr const char* tag = Tag;
  /// The elements at p as an a x b M, read-only or writable after p's constness.
  static Eigen::Map<const M> map(const element* p, std::size_t a, std::size_t b) {
    return Eigen::Map<const M>(p, static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b));
  }
  static Eigen::Map<M> map(element* p, std::size_t a, std::size_t b) {
    return Eigen::Map<M>(p, static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b));
  }
};

inline constexpr char kEigenMatrixTag[] = "eigen";
inline constexpr char kEigenArrayTag[] = "eigenarr";

template <raw_element S, int R, int C, int O, int MR, int MC>
struct raw_traits<Eigen::Matrix<S, R, C, O, MR, MC>>
    : eigen_raw_traits<Eigen::Matrix<S, R, C, O, MR, MC>, kEigenMatrixTag> {};

template <raw_element S, int R, int C, int O, int MR, int MC>
struct raw_traits<Eigen::Array<S, R, C, O, MR, MC>>
    : eigen_raw_traits<Eigen::Array<S, R, C, O, MR, MC>, kEigenArrayTag> {};

/// Eigen::Matrix / Eigen::Array of arithmetic scalars: "eigen<S,R,C,rowmajor|colmajor>"
/// ("eigenarr<…>" for arrays), R and C -1 when Dynamic.
template <class M>
struct eigen_codec {
  using S = typename M::Scalar;
  static constexpr std::size_t fixed_size =
      M::SizeAtCompileTime == Eigen::Dynamic
          ? 0
          : kRawHeader + static_cast<std::size_t>(M::SizeAtCompileTime) * sizeof(S);
  static std::string name() {
    return std::string(raw_traits<M>::tag) + "<" + codec<S>::name() + "," +
           std::to_string(static_cast<int>(M::RowsAtCompileTime)) + "," +
           std::to_string(static_cast<int>(M::ColsAtCompileTime)) + "," +
           (M::IsRowMajor ? "rowmajor" : "colmajor") + ">";
  }
  static void encode(const M& m, std::vector<std::byte>& out) {
    put_raw(out, static_cast<std::uint64_t>(m.rows()), static_cast<std::uint64_t>(m.cols()),
            m.data(), static_cast<std::size_t>(m.size()));
  }
  static M decode(std::span<const std::byte> in) {
    const RawShape s = check_raw<M>(in);
    M m;  // not M(rows, cols): for fixed-size vectors that would mean two coefficients
    m.resize(static_cast<Eigen::Index>(s.a), static_cast<Eigen::Index>(s.b));
    copy_raw(m.data(), in, s.elements);
    return m;
  }
  static std::size_t size(const M& m) {
    return kRawHeader + static_cast<std::size_t>(m.size()) * sizeof(S);
  }
};

/// Caps Eigen's own threads in an engine (thread_caps.hpp).
inline void cap_eigen_threads(unsigned n) { Eigen::setNbThreads(int(n)); }
inline const bool eigen_threads_capped = add_thread_cap(&cap_eigen_threads);

}  // namespace cadre::detail::codec_impl

namespace cadre {

template <detail::codec_impl::raw_element S, int R, int C, int O, int MR, int MC>
struct codec<Eigen::Matrix<S, R, C, O, MR, MC>>
    : detail::codec_impl::eigen_codec<Eigen::Matrix<S, R, C, O, MR, MC>> {};

template <detail::codec_impl::raw_element S, int R, int C, int O, int MR, int MC>
struct codec<Eigen::Array<S, R, C, O, MR, MC>>
    : detail::codec_impl::eigen_codec<Eigen::Array<S, R, C, O, MR, MC>> {};

}  // namespace cadre
