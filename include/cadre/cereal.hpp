// cadre/cereal.hpp — cadre with cereal: any type with a cereal serialize function can be transferred.
//
// With this header, a type that has no codec of its own but a cereal `serialize(Archive&)` (or
// save/load) member or free function goes through cereal_codec<T>. The core header leaves cereal
// out, as its headers are large.
#pragma once

/// \file
/// With `struct Point { double x, y; template <class A> void serialize(A& a) { a(x, y); } };`:
/// ```cpp
/// cadre::Cluster cluster({.engines = 1});
/// auto rc = cluster.client();
/// rc[0].push("p", my::Point{1, 2});
/// my::Point p = rc[0].pull<my::Point>("p");
/// ```

#include <cadre/cadre.hpp>

#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <istream>
#include <new>
#include <ostream>
#include <stdexcept>
#include <typeinfo>

namespace cadre {

/// Encodes any type with a cereal `serialize`/`save`+`load` function through
/// cereal::BinaryOutputArchive. Its default name, "cereal:" + the demangled typeid name, is the
/// same for binaries built by the same compiler, but no more stable than that: to make a cereal
/// type's name cross-binary-stable, specialize codec<T> on top of this class and give it a name():
///
/// ```cpp
/// template <> struct cadre::codec<my::Point> : cadre::cereal_codec<my::Point> {
///   static std::string name() { return "my::Point/1"; }
/// };
/// ```
///
/// Decoding default-constructs T, then loads into it. Truncated input is a decode_error; cereal
/// never reads past the payload, but it trusts the sizes inside it (a corrupt std::vector size in
/// a user type is an allocation before it is an error).
template <class T>
struct cereal_codec {
  /// "cereal:" and T's demangled name; specialize codec<T> to give a stable one.
  static std::string name() {
    return "cereal:" + detail::codec_impl::demangle_type(typeid(T).name());
  }

  /// Appends v, as cereal's binary archive writes it, to out.
  static void encode(const T& v, std::vector<std::byte>& out) {
    detail::codec_impl::AppendBuf buf(out);
    std::ostream os(&buf);
    cereal::BinaryOutputArchive ar(os);
    ar(v);
  }

  /// A T loaded from exactly the bytes of in; decode_error for truncated input or trailing bytes.
  static T decode(std::span<const std::byte> in) {
    static_assert(std::is_default_constructible_v<T>,
                  "cadre::cereal_codec<T>: T must be default-constructible to be decoded");
    detail::codec_impl::SpanBuf buf(in);
    std::istream is(&buf);
    T v{};
    try {
      cereal::BinaryInputArchive ar(is);
      ar(v);
    } catch (const cereal::Exception& e) {
      detail::codec_impl::fail_decode(codec<T>::name(), e.what());
    } catch (const std::length_error& e) {
      detail::codec_impl::fail_decode(codec<T>::name(),
                                      std::string("corrupt size (") + e.what() + ")");
    } catch (const std::bad_alloc&) {
      detail::codec_impl::fail_decode(codec<T>::name(), "corrupt size (allocation failed)");
    }
    if (buf.remaining() != 0)
      detail::codec_impl::fail_decode(
          codec<T>::name(), std::to_string(buf.remaining()) + " unexpected trailing bytes");
    return v;
  }

  /// The number of bytes encode() appends for v (it serializes v once to count them).
  static std::size_t size(const T& v) {
    detail::codec_impl::CountBuf buf;
    std::ostream os(&buf);
    cereal::BinaryOutputArchive ar(os);
    ar(v);
    return buf.count();
  }
};

namespace detail::codec_impl {
template <class T>
inline constexpr bool cereal_serializable_v =
    std::conjunction_v<cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>,
                       cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>>;
}  // namespace detail::codec_impl

namespace detail::codec_impl {

/// The types without a codec of their own that cereal serializes go through cereal_codec.
template <class T>
struct fallback_codec<T, std::enable_if_t<cereal_serializable_v<T>>> : cereal_codec<T> {};

}  // namespace detail::codec_impl

}  // namespace cadre
