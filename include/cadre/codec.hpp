// cadre/codec.hpp — structural type names and byte encodings of values shipped between processes.
//
// Client and engine may be different binaries, so a value's type is identified by a structural
// name ("vec<f64>", "map<str,opt<i32>>") that any binary computes the same way, never by typeid.
// Payloads use the host's little-endian layout. Contiguous arithmetic arrays (std::vector,
// std::array, Eigen::Matrix/Array) are stored raw so the reader can use them in place:
//
//   [u64 a][u64 b][elements, in storage order]        elements start at detail::kRawHeader = 16
//   std::vector<E>    a = count, b = 0               std::array<E, N>   a = N, b = 0
//   Eigen types       a = rows,  b = cols            (their codec: <cadre/eigen.hpp>)
//
// Everything else is framed element by element (see detail/wire/codec_detail.hpp). decode() and view()
// check every length before reading and throw decode_error on malformed or truncated input.
//
// This header names neither Eigen nor cereal, so that a program that ships standard types pays for
// neither at compile time: <cadre/eigen.hpp> adds the Eigen types, <cadre/cereal.hpp> any type with a
// cereal serialize function.
#pragma once

#include <cstdint>
#include <istream>
#include <new>
#include <ostream>
#include <typeinfo>

#include <cstddef>
#include <limits>

#include <cadre/detail/wire/codec_detail.hpp>
#include <cadre/errors.hpp>

namespace cadre {

namespace detail::codec_impl {

/// Looks like an Eigen dense type (its compile-time shape), without naming Eigen.
template <class T>
concept eigen_like = requires {
  typename T::Scalar;
  T::RowsAtCompileTime;
  T::ColsAtCompileTime;
};

/// The codec of a type with no codec of its own: cereal's, once <cadre/cereal.hpp> adds that
/// specialization for the types cereal can serialize; otherwise an error that says what to include.
template <class T, class Enable = void>
struct fallback_codec {
  static_assert(!eigen_like<T>, "cadre::codec<T>: T is an Eigen type: #include <cadre/eigen.hpp> to transfer it");
  static_assert(eigen_like<T>,
                "cadre::codec<T>: T cannot be transferred. Either give T a cereal serialize(Archive&) "
                "member or free function and #include <cadre/cereal.hpp> (with the cereal/types/*.hpp "
                "headers its members need), or specialize cadre::codec<T> with name(), encode(), "
                "decode() and size(); see cadre/codec.hpp");
};

}  // namespace detail::codec_impl

/// How values of T become bytes: the customization point. Built in: arithmetic types, std::string,
/// std::vector, std::array, std::pair, std::tuple, std::optional, std::map, std::unordered_map,
/// std::set, std::unordered_set (nested freely); with `#include <cadre/eigen.hpp>`, Eigen::Matrix/Array
/// of arithmetic scalars. Any other type is transferable in one of two ways:
///  1. give it a cereal `serialize(Archive&)` member or free function and `#include <cadre/cereal.hpp>`
///     — it then goes through cereal_codec<T> (see there for making its name cross-binary-stable); or
///  2. specialize codec<T> with the four members every codec has:
///
/// ```cpp
/// template <> struct cadre::codec<my::Id> {
///   // Structural and stable, e.g. "my::Id".
///   static std::string name();
///   // APPENDS the payload to out.
///   static void encode(const my::Id&, std::vector<std::byte>& out);
///   // Exactly one payload; throws decode_error when it is malformed.
///   static my::Id decode(std::span<const std::byte> payload);
///   // The number of bytes encode appends.
///   static std::size_t size(const my::Id&);
/// };
/// ```
///
/// A codec may also declare `static constexpr std::size_t fixed_size` when every payload has that
/// many bytes; containers then store its elements without a length prefix.
template <class T, class Enable>
struct codec : detail::codec_impl::fallback_codec<T> {};

/// Arithmetic types: exactly sizeof(T) bytes. Names by size and signedness: "i32", "u8", "f64", …,
/// and "bool", "char".
template <class T>
requires std::is_arithmetic_v<T>
struct codec<T> {
  /// Every payload is sizeof(T) bytes.
  static constexpr std::size_t fixed_size = sizeof(T);
  /// "i32", "u8", "f64", "bool", "char", ...
  static std::string name() { return detail::codec_impl::arithmetic_name<T>(); }
  /// Appends the sizeof(T) bytes of v.
  static void encode(const T& v, std::vector<std::byte>& out) {
    std::memcpy(detail::codec_impl::grow(out, sizeof(T)), &v, sizeof(T));
  }
  /// v from exactly sizeof(T) bytes; decode_error for another size, or a bool byte other than 0 or 1.
  static T decode(std::span<const std::byte> in) {
    if (in.size() != sizeof(T))
      detail::codec_impl::fail_decode(name(), "expected " + std::to_string(sizeof(T)) +
                                                  " bytes, got " + std::to_string(in.size()));
    if constexpr (std::is_same_v<T, bool>) {
      if (in[0] > std::byte{1})
        detail::codec_impl::fail_decode(
            name(), "byte " + std::to_string(std::to_integer<int>(in[0])) + " is not a bool");
      return in[0] == std::byte{1};
    } else {
      T v;
      std::memcpy(&v, in.data(), sizeof(T));
      return v;
    }
  }
  /// sizeof(T).
  static std::size_t size(const T&) { return sizeof(T); }
};

// ---------------------------------------------------------------------------------------------
// Raw arrays
// ---------------------------------------------------------------------------------------------

namespace detail::codec_impl {

template <class T>
struct raw_traits : std::false_type {};

template <raw_element E, class A>
struct raw_traits<std::vector<E, A>> : std::true_type {
  using element = E;
};

template <raw_element E, std::size_t N>
struct raw_traits<std::array<E, N>> : std::true_type {
  using element = E;
};

/// An Eigen::Matrix/Array, whose raw_traits (in <cadre/eigen.hpp>) also say how to map its elements.
template <class T>
concept eigen_raw = requires {
  raw_traits<T>::is_eigen;
};

/// Eigen::Dynamic, the dimension of a matrix sized at run time (checked equal in <cadre/eigen.hpp>).
inline constexpr int kDynamic = -1;

/// Writes [a][b] and n elements with one resize and one memcpy of the elements.
template <class E>
void put_raw(std::vector<std::byte>& out, std::uint64_t a, std::uint64_t b, const E* data,
             std::size_t n) {
  std::byte* elements = write_raw_header(grow(out, kRawHeader + n * sizeof(E)), a, b);
  if (n != 0) std::memcpy(elements, data, n * sizeof(E));
}

struct RawShape {
  std::size_t a, b, elements;
};

/// Validates a raw-array payload of type T (header, fixed dimensions, exact size) and returns its
/// shape.
template <class T>
RawShape check_raw(std::span<const std::byte> in) {
  using E = typename raw_traits<T>::element;
  PayloadReader r(in, &codec<T>::name);
  const std::uint64_t a = r.u64(), b = r.u64();
  std::uint64_t n;
  if constexpr (eigen_raw<T>) {
    constexpr auto kMaxIndex = static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());  // Eigen::Index
    if (a > kMaxIndex || b > kMaxIndex)
      r.fail("dimensions " + std::to_string(a) + "x" + std::to_string(b) + " are out of range");
    const auto check_dim = [&](const char* what, std::uint64_t got, int fixed, int max) {
      if (fixed != kDynamic && got != static_cast<std::uint64_t>(fixed))
        r.fail(std::string(what) + " is " + std::to_string(got) + ", the type has " +
               std::to_string(fixed));
      if (max != kDynamic && got > static_cast<std::uint64_t>(max))
        r.fail(std::string(what) + " is " + std::to_string(got) + ", the type allows at most " +
               std::to_string(max));
    };
    check_dim("rows", a, T::RowsAtCompileTime, T::MaxRowsAtCompileTime);
    check_dim("cols", b, T::ColsAtCompileTime, T::MaxColsAtCompileTime);
    if (b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b)
      r.fail("dimensions " + std::to_string(a) + "x" + std::to_string(b) + " overflow");
    n = a * b;
  } else {
    if (b != 0) r.fail("reserved header word is " + std::to_string(b) + ", expected 0");
    if constexpr (requires { std::tuple_size<T>::value; }) {
      if (a != std::tuple_size_v<T>)
        r.fail("element count is " + std::to_string(a) + ", the type has " +
               std::to_string(std::tuple_size_v<T>));
    }
    n = a;
  }
  if (n > r.remaining() / sizeof(E))
    r.fail("truncated: header says " + std::to_string(n) + " elements of " +
           std::to_string(sizeof(E)) + " bytes, only " + std::to_string(r.remaining()) +
           " bytes follow");
  r.take(n * sizeof(E));
  r.finish();
  return {static_cast<std::size_t>(a), static_cast<std::size_t>(b), static_cast<std::size_t>(n)};
}

template <class E>
void copy_raw(E* dst, std::span<const std::byte> in, std::size_t n) {
  if (n != 0) std::memcpy(dst, in.data() + kRawHeader, n * sizeof(E));
}

}  // namespace detail::codec_impl

/// "vec<NAME>" of raw elements: [u64 count][u64 0][count * sizeof(E) bytes].
template <detail::codec_impl::raw_element E, class A>
struct codec<std::vector<E, A>> {
  using V = std::vector<E, A>;  ///< the vector type
  /// "vec<" + the element's name + ">".
  static std::string name() { return "vec<" + codec<E>::name() + ">"; }
  /// Appends the header and the elements' bytes.
  static void encode(const V& v, std::vector<std::byte>& out) {
    detail::codec_impl::put_raw(out, v.size(), 0, v.data(), v.size());
  }
  /// A vector from one payload; decode_error when the header and the size disagree.
  static V decode(std::span<const std::byte> in) {
    const auto s = detail::codec_impl::check_raw<V>(in);
    V v(s.elements);
    detail::codec_impl::copy_raw(v.data(), in, s.elements);
    return v;
  }
  /// 16 header bytes plus the elements'.
  static std::size_t size(const V& v) { return detail::kRawHeader + v.size() * sizeof(E); }
};

/// "arr<NAME,N>" of raw elements: [u64 N][u64 0][N * sizeof(E) bytes].
template <detail::codec_impl::raw_element E, std::size_t N>
struct codec<std::array<E, N>> {
  using V = std::array<E, N>;  ///< the array type
  /// Every payload has the 16 header bytes and N elements.
  static constexpr std::size_t fixed_size = detail::kRawHeader + N * sizeof(E);
  /// "arr<" + the element's name + "," + N + ">".
  static std::string name() { return "arr<" + codec<E>::name() + "," + std::to_string(N) + ">"; }
  /// Appends the header and the elements' bytes.
  static void encode(const V& v, std::vector<std::byte>& out) {
    detail::codec_impl::put_raw(out, N, 0, v.data(), N);
  }
  /// An array from one payload; decode_error when the header does not say N elements.
  static V decode(std::span<const std::byte> in) {
    detail::codec_impl::check_raw<V>(in);
    V v;
    detail::codec_impl::copy_raw(v.data(), in, N);
    return v;
  }
  /// fixed_size.
  static std::size_t size(const V&) { return fixed_size; }
};

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Structural name of T, identical in every binary: type_name<std::vector<double>>() == "vec<f64>",
/// type_name<long>() == type_name<long long>() == "i64". cv and references are ignored.
template <class T>
std::string type_name() {
  static const std::string name = codec<std::remove_cvref_t<T>>::name();
  return name;
}

/// FNV-1a 64 of type_name<T>(), computed once per process.
template <class T>
std::uint64_t type_hash() {
  static const std::uint64_t hash = detail::codec_impl::fnv1a64(type_name<T>());
  return hash;
}

/// Appends the payload of value to out (existing bytes are kept).
template <class T>
void encode(const T& value, std::vector<std::byte>& out) {
  codec<std::remove_cvref_t<T>>::encode(value, out);
}

/// Decodes exactly one payload of T. Throws decode_error when the bytes are malformed, truncated
/// or too long; never reads outside payload.
template <class T>
T decode(std::span<const std::byte> payload) {
  return codec<std::remove_cvref_t<T>>::decode(payload);
}

/// Exactly the number of bytes encode(value, out) appends.
template <class T>
std::size_t encoded_size(const T& value) {
  return codec<std::remove_cvref_t<T>>::size(value);
}

/// True for the types stored raw: std::vector<E> and std::array<E, N> with E arithmetic but not
/// bool, and (with <cadre/eigen.hpp>) Eigen::Matrix / Eigen::Array with such a scalar.
template <class T>
inline constexpr bool is_raw_array_v =
    detail::codec_impl::raw_traits<std::remove_cvref_t<T>>::value;

/// The element (or scalar) type of a raw array type.
template <class T>
requires is_raw_array_v<T>
using raw_element_t = typename detail::codec_impl::raw_traits<std::remove_cvref_t<T>>::element;

namespace detail::codec_impl {

/// What encode() writes for a raw array: the header words [a][b], then n elements from data.
template <class E>
struct RawParts {
  std::uint64_t a, b;
  const E* data;
  std::size_t n;
};
template <class T>
requires is_raw_array_v<T>
RawParts<raw_element_t<T>> raw_parts(const T& v) {
  if constexpr (eigen_raw<T>)
    return {static_cast<std::uint64_t>(v.rows()), static_cast<std::uint64_t>(v.cols()), v.data(), static_cast<std::size_t>(v.size())};
  else
    return {v.size(), 0, v.data(), v.size()};
}

}  // namespace detail::codec_impl

/// In-place, read-only view of a raw array payload: std::span<const E> for std::vector<E> and
/// std::array<E, N>, Eigen::Map<const M> for an Eigen type M. The view points into payload
/// (at payload.data() + 16) and lives as long as it does. Throws decode_error when the payload is
/// inconsistent or its elements are misaligned for E.
///
///   auto xs = cadre::view<std::vector<double>>(payload);   // std::span<const double>
///   auto m = cadre::view<Eigen::MatrixXd>(payload);        // Eigen::Map<const Eigen::MatrixXd>
template <class T>
auto view(std::span<const std::byte> payload) {
  using U = std::remove_cvref_t<T>;
  static_assert(is_raw_array_v<U>,
                "cadre::view<T>: T must be a raw array (std::vector/std::array of a non-bool "
                "arithmetic type, or an Eigen::Matrix/Array of one); use cadre::decode<T> for "
                "other types");
  using E = raw_element_t<U>;
  const detail::codec_impl::RawShape s = detail::codec_impl::check_raw<U>(payload);
  const std::byte* p = payload.data() + detail::kRawHeader;
  if (reinterpret_cast<std::uintptr_t>(p) % alignof(E) != 0)
    detail::codec_impl::fail_decode(
        type_name<U>(),
        "elements at address " + std::to_string(reinterpret_cast<std::uintptr_t>(p)) +
            " are not aligned to " + std::to_string(alignof(E)) + " bytes; decode it instead");
  // The bytes were written by memcpy of E objects (encode), which implicitly creates them.
  const E* elements = reinterpret_cast<const E*>(p);
  if constexpr (detail::codec_impl::eigen_raw<U>)
    return detail::codec_impl::raw_traits<U>::map(elements, s.a, s.b);
  else
    return std::span<const E>(elements, s.elements);
}

}  // namespace cadre
