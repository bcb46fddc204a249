// cadre/detail/wire/map_call.hpp — one engine task of a map: apply f to each element of its chunk(s).
#pragma once

#include <cadre/detail/base/ranges.hpp>
#include <cadre/detail/wire/args.hpp>
#include <cadre/detail/wire/call.hpp>

#include <tuple>
#include <vector>

namespace cadre::detail {

/// The element type a map over these ranges produces.
template <class F, class... Ranges>
using map_result_t = std::decay_t<std::invoke_result_t<std::decay_t<F>&, const range_value_t<Ranges>&...>>;

/// The next `count` elements from `it` (advanced past them), as a vector: one map task's chunk.
template <class It>
auto take_n(It& it, std::size_t count) {
  std::vector<std::decay_t<decltype(*it)>> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i, ++it) out.push_back(*it);
  return out;
}

/// Engine side: decodes one std::vector per input sequence, calls f on the zipped elements, returns
/// std::vector<R>. `f` is the resolved function pointer, or the callable's bytes.
template <class Fn, class R, class... V>
void map_thunk(CallFrame& f) {
  Reader r(f.args);
  if (r.get<std::uint32_t>() != sizeof...(V)) throw decode_error("map record has the wrong number of sequences");
  std::tuple<std::vector<V>...> cols = get_args<std::vector<V>...>(r, f.args, *f.ns, std::index_sequence_for<V...>{});
  const std::size_t n = std::get<0>(cols).size();
  std::apply([&](const auto&... c) {
    if (((c.size() != n) || ...)) throw decode_error("map sequences of different lengths");
  }, cols);
  auto run = [&](auto& fn) {
    std::vector<R> out;
    out.reserve(n);
    for (std::size_t k = 0; k < n; ++k)
      std::apply([&](const auto&... c) { out.push_back(std::invoke(fn, c[k]...)); }, cols);
    encode_typed(out, *f.result);
  };
  with_callable<Fn>(f, run);
}

}  // namespace cadre::detail
