// cadre/detail/base/ranges.hpp — the few range concepts and traits cadre needs, from <iterator> alone.
//
// <ranges> holds them too, with the views and algorithms that cadre never uses: ~4,300 preprocessed
// lines for every program that includes cadre (tools/compile-cost). The range access objects
// (std::ranges::begin, size, data, advance) and the iterator concepts are in <iterator>.
#pragma once

#include <iterator>
#include <utility>

namespace cadre::detail {

template <class R>
using range_iterator_t = decltype(std::ranges::begin(std::declval<R&>()));
template <class R>
using range_value_t = std::iter_value_t<range_iterator_t<R>>;
template <class R>
using range_difference_t = std::iter_difference_t<range_iterator_t<R>>;

template <class R>
concept input_range = requires(R& r) {
  std::ranges::begin(r);
  std::ranges::end(r);
} && std::input_iterator<range_iterator_t<R>>;

template <class R>
concept sized_range = input_range<R> && requires(R& r) { std::ranges::size(r); };

template <class R>
concept contiguous_range = input_range<R> && std::contiguous_iterator<range_iterator_t<R>> && requires(R& r) {
  std::ranges::data(r);
};

}  // namespace cadre::detail
