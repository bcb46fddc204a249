// cadre/fmt.hpp — {fmt} formatters for cadre's views: fmt::print("{}", rc[cadre::all]).
//
// The core header leaves {fmt} out; operator<< and cadre::to_string print views without it.
#pragma once

#include <cadre/cadre.hpp>

#include <fmt/format.h>

#include <string_view>

/// \cond internal
// Formats a view as its to_string(): "<DirectView [0, 1]>", "<EngineView 2>", "<LoadBalancedView [0, 1]>".
template <class View>
requires std::is_same_v<View, cadre::DirectView> || std::is_same_v<View, cadre::EngineView> ||
         std::is_same_v<View, cadre::LoadBalancedView>
struct fmt::formatter<View> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const View& v, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(cadre::to_string(v), ctx);
  }
};
/// \endcond
