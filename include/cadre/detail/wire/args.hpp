// cadre/detail/wire/args.hpp — the argument list of a call: how the client writes it and a thunk reads it back.
//
//   [u32 count] then per argument either
//     value:    [u8 ArgKind::value][zeros to 16][u64 length][zeros to 16][typed value of `length` bytes]
//     name_ref: [u8 ArgKind::name_ref][u32 name_len][name]      (cadre::ref: the engine's own value)
//
// The list starts 16-byte aligned, so each typed value does too, and arrays in it can be read in place.
#pragma once

#include <cadre/detail/wire/wire.hpp>
#include <cadre/errors.hpp>
#include <cadre/namespace.hpp>
#include <cadre/ref.hpp>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace cadre::detail {

template <class T>
inline constexpr bool is_ref_v = std::is_same_v<std::decay_t<T>, ref>;

enum class ArgKind : std::uint8_t { value = 0, name_ref = 1 };

/// Longest name a cadre::ref argument may carry.
inline constexpr std::size_t kMaxRefName = 4096;

template <class P, class A>
void put_arg(Writer& w, A&& a) {
  if constexpr (is_ref_v<A>) {
    w.put(ArgKind::name_ref);
    w.str(a.name);
  } else {
    static_assert(std::is_convertible_v<A&&, P>, "cadre: an argument does not convert to the function's parameter type");
    // The one resize that makes room for the value's envelope header covers the kind, padding and
    // length before it too: four vector calls instead were a fifth of the client's instructions per
    // load-balanced apply_async (callgrind of bench/lb_bench.cpp).
    auto& out = w.buffer();
    const std::size_t kind_at = out.size(), len_at = (kind_at + sizeof(ArgKind) + 15) / 16 * 16, start = len_at + 16;
    if constexpr (std::is_same_v<std::decay_t<A>, P>) encode_typed_at<P>(a, out, start);
    else encode_typed_at<P>(P(std::forward<A>(a)), out, start);
    const ArgKind kind = ArgKind::value;
    const std::uint64_t len = out.size() - start;
    std::memcpy(out.data() + kind_at, &kind, sizeof kind);
    std::memcpy(out.data() + len_at, &len, sizeof len);
  }
}

/// Reads argument `index` as a P from r, which reads `all` (the whole list, for in-place views).
template <class P>
P get_arg(Reader& r, std::span<const std::byte> all, Namespace& ns, std::size_t index) {
  const auto kind = r.get<ArgKind>();
  if (kind == ArgKind::name_ref) return ns.get<P>(r.str(kMaxRefName));
  if (kind != ArgKind::value) throw decode_error("argument " + std::to_string(index) + " has an unknown kind");
  r.align(16);
  const auto len = r.get<std::uint64_t>();
  r.align(16);
  const std::size_t at = r.pos();
  r.take(len);
  return decode_typed<P>(parse_typed(all.subspan(at, len)), [index] { return "argument " + std::to_string(index); });
}

/// Writes the arguments for a function whose (decayed, namespace-less) parameters are Params.
template <class Params, class... Args>
void put_args(Writer& w, Args&&... args) {
  static_assert(std::tuple_size_v<Params> == sizeof...(Args),
                "cadre: wrong number of arguments for this function (a leading cadre::Namespace& parameter is passed by the engine)");
  w.put(std::uint32_t(sizeof...(Args)));
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (put_arg<std::tuple_element_t<I, Params>>(w, std::forward<Args>(args)), ...);
  }(std::index_sequence_for<Args...>{});
}

/// Reads arguments of types P... in order (a braced initializer evaluates left to right), after the
/// count, which the caller has checked.
template <class... P, std::size_t... I>
std::tuple<P...> get_args([[maybe_unused]] Reader& r, [[maybe_unused]] std::span<const std::byte> all, [[maybe_unused]] Namespace& ns, std::index_sequence<I...>) {
  return std::tuple<P...>{get_arg<P>(r, all, ns, I)...};
}

}  // namespace cadre::detail
