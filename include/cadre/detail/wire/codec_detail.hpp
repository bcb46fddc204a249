// cadre/detail/wire/codec_detail.hpp — byte cursors, framing and the std-container codecs.
//
// Every container frames its elements the same way: an element whose codec declares a
// `fixed_size` is written as exactly that many bytes, any other element as [u64 n][n bytes].
// Every decoder receives exactly its own payload and rejects short, long or malformed input with
// a decode_error that names the type; counts are checked against the bytes left before anything
// is allocated, so a corrupt count can neither overflow a size computation nor allocate wildly.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <streambuf>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <cadre/errors.hpp>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif

namespace cadre {

template <class T, class Enable = void>
struct codec;

namespace detail {
/// Raw arrays: [u64 a][u64 b] then the elements, which start at this offset.
inline constexpr std::size_t kRawHeader = 16;

/// Writes a raw array's header words at the start of its payload; returns where the elements go.
inline std::byte* write_raw_header(std::byte* payload, std::uint64_t a, std::uint64_t b) noexcept {
  const std::uint64_t words[2] = {a, b};
  std::memcpy(payload, words, sizeof words);
  return payload + kRawHeader;
}
}  // namespace detail

// A namespace of their own, so these helpers never collide with other cadre::detail headers.
namespace detail::codec_impl {

/// Element types stored raw (memcpy in, view in place). bool is excluded: not every byte is a bool.
template <class E>
concept raw_element = std::is_arithmetic_v<E> && !std::is_same_v<std::remove_cv_t<E>, bool>;

/// FNV-1a, 64 bit.
constexpr std::uint64_t fnv1a64(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

inline std::string demangle_type(const char* mangled) {
#if __has_include(<cxxabi.h>)
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> p(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                           std::free);
  if (status == 0 && p) return p.get();
#endif
  return mangled;
}

/// Names follow size and signedness, never the spelling: long and long long are both "i64".
template <class T>
std::string arithmetic_name() {
  using std::is_same_v;
  if constexpr (is_same_v<T, bool>)
    return "bool";
  else if constexpr (is_same_v<T, char>)
    return "char";
  else if constexpr (is_same_v<T, wchar_t>)
    return "wchar";
  else if constexpr (is_same_v<T, char8_t>)
    return "char8";
  else if constexpr (is_same_v<T, char16_t>)
    return "char16";
  else if constexpr (is_same_v<T, char32_t>)
    return "char32";
  else if constexpr (std::is_integral_v<T>)
    return (std::is_signed_v<T> ? "i" : "u") + std::to_string(sizeof(T) * 8);
  else {
    constexpr int digits = std::numeric_limits<T>::digits;
    if constexpr (digits == 24)
      return "f32";
    else if constexpr (digits == 53)
      return "f64";
    else if constexpr (digits == 64)
      return "f80";
    else if constexpr (digits == 113)
      return "f128";
    else
      return "f" + std::to_string(sizeof(T) * 8) + "m" + std::to_string(digits);
  }
}

template <class... Ts>
std::string name_list() {
  std::string s;
  ((s += (s.empty() ? "" : ","), s += codec<Ts>::name()), ...);
  return s;
}

[[noreturn]] inline void fail_decode(const std::string& type, const std::string& what) {
  throw decode_error("cannot decode " + type + ": " + what);
}

// ---------------------------------------------------------------------------------------------
// Writing and reading bytes
// ---------------------------------------------------------------------------------------------

/// Appends n zero bytes to out and returns where they start.
inline std::byte* grow(std::vector<std::byte>& out, std::size_t n) {
  const std::size_t at = out.size();
  out.resize(at + n);
  return out.data() + at;
}

inline void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
  std::memcpy(grow(out, 8), &v, 8);
}

/// Bounds-checked cursor over one payload; every failure names the type being decoded.
class PayloadReader {
 public:
  using name_fn = std::string (*)();
  PayloadReader(std::span<const std::byte> in, name_fn name) noexcept : in_(in), name_(name) {}

  std::size_t remaining() const noexcept { return in_.size() - pos_; }

  std::span<const std::byte> take(std::uint64_t n) {
    if (n > remaining())
      fail("truncated: need " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
           ", only " + std::to_string(remaining()) + " left");
    auto s = in_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }

  std::uint64_t u64() {
    std::uint64_t v;
    std::memcpy(&v, take(8).data(), 8);
    return v;
  }

  /// Reads an element count and checks the elements can fit in what is left.
  std::size_t count(std::size_t min_bytes_each) {
    const std::uint64_t n = u64();
    if (min_bytes_each != 0 && n > remaining() / min_bytes_each)
      fail("element count " + std::to_string(n) + " cannot fit in the " +
           std::to_string(remaining()) + " bytes left (at least " + std::to_string(min_bytes_each) +
           " bytes each)");
    return static_cast<std::size_t>(n);
  }

  void finish() const {
    if (remaining() != 0)
      fail(std::to_string(remaining()) + " unexpected trailing bytes at offset " +
           std::to_string(pos_));
  }

  [[noreturn]] void fail(const std::string& what) const { fail_decode(name_(), what); }

 private:
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  name_fn name_;
};

// ---------------------------------------------------------------------------------------------
// Element framing
// ---------------------------------------------------------------------------------------------

/// A codec's `fixed_size`, or 0 when its payloads vary in size (those get a u64 length prefix).
template <class T>
constexpr std::size_t fixed_size() {
  if constexpr (requires {
                  { codec<T>::fixed_size } -> std::convertible_to<std::size_t>;
                })
    return codec<T>::fixed_size;
  else
    return 0;
}
template <class T>
inline constexpr std::size_t fixed_size_v = fixed_size<std::remove_cv_t<T>>();

/// The fewest bytes one framed T can take; what element counts are checked against.
template <class T>
inline constexpr std::size_t min_framed_v = fixed_size_v<T> != 0 ? fixed_size_v<T> : 8;

template <class T>
void put_framed(const T& v, std::vector<std::byte>& out) {
  if constexpr (fixed_size_v<T> != 0) {
    codec<T>::encode(v, out);
  } else {
    const std::size_t at = out.size();
    out.resize(at + 8);
    codec<T>::encode(v, out);
    const std::uint64_t n = out.size() - at - 8;
    std::memcpy(out.data() + at, &n, 8);
  }
}

template <class T>
std::size_t framed_size(const T& v) {
  if constexpr (fixed_size_v<T> != 0)
    return fixed_size_v<T>;
  else
    return 8 + codec<T>::size(v);
}

template <class T>
T take_framed(PayloadReader& r) {
  if constexpr (fixed_size_v<T> != 0)
    return codec<T>::decode(r.take(fixed_size_v<T>));
  else
    return codec<T>::decode(r.take(r.u64()));
}

// ---------------------------------------------------------------------------------------------
// Shared codec bodies
// ---------------------------------------------------------------------------------------------

/// std::tuple and std::pair: the elements framed one after another.
template <class T, class... Ts>
struct tuple_codec {
  static constexpr std::size_t fixed_size =
      ((fixed_size_v<Ts> != 0) && ...) ? (fixed_size_v<Ts> + ... + 0) : 0;

  static void encode(const T& v, std::vector<std::byte>& out) {
    std::apply([&](const auto&... e) { (put_framed(e, out), ...); }, v);
  }
  static T decode(std::span<const std::byte> in) {
    PayloadReader r(in, &codec<T>::name);
    T v{take_framed<std::remove_cv_t<Ts>>(r)...};  // braced init: evaluated left to right
    r.finish();
    return v;
  }
  static std::size_t size(const T& v) {
    return std::apply([](const auto&... e) { return (framed_size(e) + ... + std::size_t{0}); }, v);
  }
};

/// Maps and sets: [u64 count] then each key (and value) framed. V is void for sets.
template <class M, class K, class V>
struct assoc_codec {
  static void encode(const M& m, std::vector<std::byte>& out) {
    put_u64(out, m.size());
    for (const auto& e : m) {
      if constexpr (std::is_void_v<V>) {
        put_framed(e, out);
      } else {
        put_framed(e.first, out);
        put_framed(e.second, out);
      }
    }
  }
  static M decode(std::span<const std::byte> in) {
    PayloadReader r(in, &codec<M>::name);
    std::size_t each = min_framed_v<K>;
    if constexpr (!std::is_void_v<V>) each += min_framed_v<V>;
    const std::size_t n = r.count(each);
    M m;
    if constexpr (requires { m.reserve(n); }) m.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      bool fresh;
      if constexpr (std::is_void_v<V>) {
        fresh = m.insert(take_framed<K>(r)).second;
      } else {
        K k = take_framed<K>(r);
        fresh = m.emplace(std::move(k), take_framed<V>(r)).second;
      }
      if (!fresh) r.fail("duplicate key at element " + std::to_string(i));
    }
    r.finish();
    return m;
  }
  static std::size_t size(const M& m) {
    std::size_t n = 8;
    for (const auto& e : m) {
      if constexpr (std::is_void_v<V>)
        n += framed_size(e);
      else
        n += framed_size(e.first) + framed_size(e.second);
    }
    return n;
  }
};

// ---------------------------------------------------------------------------------------------
// std::streambufs that let cereal archives write to / read from our byte vectors
// ---------------------------------------------------------------------------------------------

class AppendBuf : public std::streambuf {
 public:
  explicit AppendBuf(std::vector<std::byte>& out) noexcept : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n > 0) std::memcpy(grow(out_, static_cast<std::size_t>(n)), s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    out_.push_back(static_cast<std::byte>(traits_type::to_char_type(c)));
    return c;
  }

 private:
  std::vector<std::byte>& out_;
};

class CountBuf : public std::streambuf {
 public:
  std::size_t count() const noexcept { return n_; }

 protected:
  std::streamsize xsputn(const char*, std::streamsize n) override {
    n_ += static_cast<std::size_t>(n);
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) ++n_;
    return traits_type::not_eof(c);
  }

 private:
  std::size_t n_ = 0;
};

/// Read-only: the get area points into the payload, which is never written through it.
class SpanBuf : public std::streambuf {
 public:
  explicit SpanBuf(std::span<const std::byte> in) noexcept {
    char* p = const_cast<char*>(reinterpret_cast<const char*>(in.data()));
    setg(p, p, p + in.size());
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(egptr() - gptr()); }
};

}  // namespace detail::codec_impl

// ---------------------------------------------------------------------------------------------
// Codecs of the standard containers (raw arithmetic arrays and Eigen live in codec.hpp)
// ---------------------------------------------------------------------------------------------

/// "str": [u64 n][n bytes].
template <>
struct codec<std::string> {
  static std::string name() { return "str"; }
  static void encode(const std::string& s, std::vector<std::byte>& out) {
    detail::codec_impl::put_u64(out, s.size());
    if (!s.empty()) std::memcpy(detail::codec_impl::grow(out, s.size()), s.data(), s.size());
  }
  static std::string decode(std::span<const std::byte> in) {
    detail::codec_impl::PayloadReader r(in, &name);
    const std::size_t n = r.count(1);
    const auto bytes = r.take(n);
    r.finish();
    return std::string(reinterpret_cast<const char*>(bytes.data()), n);
  }
  static std::size_t size(const std::string& s) { return 8 + s.size(); }
};

/// "vec<NAME>" of non-raw elements: [u64 count] then each element framed.
template <class E, class A>
struct codec<std::vector<E, A>> {
  using V = std::vector<E, A>;
  static std::string name() { return "vec<" + codec<E>::name() + ">"; }
  static void encode(const V& v, std::vector<std::byte>& out) {
    detail::codec_impl::put_u64(out, v.size());
    for (const auto& e : v) detail::codec_impl::put_framed(e, out);
  }
  static V decode(std::span<const std::byte> in) {
    detail::codec_impl::PayloadReader r(in, &name);
    const std::size_t n = r.count(detail::codec_impl::min_framed_v<E>);
    V v;
    v.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.push_back(detail::codec_impl::take_framed<E>(r));
    r.finish();
    return v;
  }
  static std::size_t size(const V& v) {
    std::size_t n = 8;
    for (const auto& e : v) n += detail::codec_impl::framed_size(e);
    return n;
  }
};

/// "vec<bool>": [u64 count][one byte, 0 or 1, per element].
template <class A>
struct codec<std::vector<bool, A>> {
  using V = std::vector<bool, A>;
  static std::string name() { return "vec<bool>"; }
  static void encode(const V& v, std::vector<std::byte>& out) {
    detail::codec_impl::put_u64(out, v.size());
    std::byte* p = detail::codec_impl::grow(out, v.size());
    for (bool b : v) *p++ = static_cast<std::byte>(b);
  }
  static V decode(std::span<const std::byte> in) {
    detail::codec_impl::PayloadReader r(in, &name);
    const std::size_t n = r.count(1);
    const auto bytes = r.take(n);
    r.finish();
    V v(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (bytes[i] > std::byte{1})
        r.fail("byte " + std::to_string(std::to_integer<int>(bytes[i])) + " of element " +
               std::to_string(i) + " is not a bool");
      v[i] = bytes[i] == std::byte{1};
    }
    return v;
  }
  static std::size_t size(const V& v) { return 8 + v.size(); }
};

/// "arr<NAME,N>" of non-raw elements: the N elements framed (no count; N is in the name).
template <class E, std::size_t N>
struct codec<std::array<E, N>> {
  using V = std::array<E, N>;
  static constexpr std::size_t fixed_size = detail::codec_impl::fixed_size_v<E> * N;
  static std::string name() { return "arr<" + codec<E>::name() + "," + std::to_string(N) + ">"; }
  static void encode(const V& v, std::vector<std::byte>& out) {
    for (const auto& e : v) detail::codec_impl::put_framed(e, out);
  }
  static V decode(std::span<const std::byte> in) {
    static_assert(std::is_default_constructible_v<E>,
                  "cadre: std::array<E, N> decodes into a default-constructed array");
    detail::codec_impl::PayloadReader r(in, &name);
    V v{};
    for (auto& e : v) e = detail::codec_impl::take_framed<E>(r);
    r.finish();
    return v;
  }
  static std::size_t size(const V& v) {
    std::size_t n = 0;
    for (const auto& e : v) n += detail::codec_impl::framed_size(e);
    return n;
  }
};

/// "tuple<A,B,...>": the elements framed in order.
template <class... Ts>
struct codec<std::tuple<Ts...>> : detail::codec_impl::tuple_codec<std::tuple<Ts...>, Ts...> {
  static std::string name() {
    return "tuple<" + detail::codec_impl::name_list<std::remove_cv_t<Ts>...>() + ">";
  }
};

/// "pair<A,B>": first then second, framed.
template <class A, class B>
struct codec<std::pair<A, B>> : detail::codec_impl::tuple_codec<std::pair<A, B>, A, B> {
  static std::string name() {
    return "pair<" + detail::codec_impl::name_list<std::remove_cv_t<A>, std::remove_cv_t<B>>() +
           ">";
  }
};

/// "opt<A>": [u8 0] when empty, [u8 1][payload of A] otherwise.
template <class A>
struct codec<std::optional<A>> {
  using V = std::optional<A>;
  static std::string name() { return "opt<" + codec<A>::name() + ">"; }
  static void encode(const V& v, std::vector<std::byte>& out) {
    out.push_back(static_cast<std::byte>(v.has_value()));
    if (v) codec<A>::encode(*v, out);
  }
  static V decode(std::span<const std::byte> in) {
    detail::codec_impl::PayloadReader r(in, &name);
    const std::byte flag = r.take(1)[0];
    if (flag == std::byte{1}) return codec<A>::decode(in.subspan(1));
    if (flag != std::byte{0})
      r.fail("presence flag is " + std::to_string(std::to_integer<int>(flag)) + ", not 0 or 1");
    r.finish();
    return std::nullopt;
  }
  static std::size_t size(const V& v) { return 1 + (v ? codec<A>::size(*v) : 0); }
};

/// "map<K,V>": [u64 count] then key, value framed, in key order.
template <class K, class V, class C, class A>
struct codec<std::map<K, V, C, A>> : detail::codec_impl::assoc_codec<std::map<K, V, C, A>, K, V> {
  static std::string name() { return "map<" + detail::codec_impl::name_list<K, V>() + ">"; }
};

/// "umap<K,V>": as map, in iteration order.
template <class K, class V, class H, class Eq, class A>
struct codec<std::unordered_map<K, V, H, Eq, A>>
    : detail::codec_impl::assoc_codec<std::unordered_map<K, V, H, Eq, A>, K, V> {
  static std::string name() { return "umap<" + detail::codec_impl::name_list<K, V>() + ">"; }
};

/// "set<K>": [u64 count] then each key framed.
template <class K, class C, class A>
struct codec<std::set<K, C, A>> : detail::codec_impl::assoc_codec<std::set<K, C, A>, K, void> {
  static std::string name() { return "set<" + codec<K>::name() + ">"; }
};

/// "uset<K>": as set, in iteration order.
template <class K, class H, class Eq, class A>
struct codec<std::unordered_set<K, H, Eq, A>>
    : detail::codec_impl::assoc_codec<std::unordered_set<K, H, Eq, A>, K, void> {
  static std::string name() { return "uset<" + codec<K>::name() + ">"; }
};

}  // namespace cadre
