// cadre/export.hpp — CADRE_EXPORT, which lets generic `cadre-engine`s call a C++ function of a shared library.
#pragma once

/// \file
/// CADRE_EXPORT: lets generic `cadre-engine`s call a C++ function of a shared library.

#include <cadre/detail/wire/call.hpp>
#include <cadre/detail/wire/exports.hpp>

/// Makes a function callable on generic `cadre-engine`s (engines that do not run the client's own
/// program). Put it at namespace scope in the shared library that defines the function, and load that
/// library in the client (link it, or dlopen it): the engines load it by path when first called.
///
/// ```cpp
/// // libstats.so
/// double mean(std::vector<double> xs) { return std::reduce(xs.begin(), xs.end()) / xs.size(); }
/// CADRE_EXPORT(mean);
/// ```
///
/// ```cpp
/// // the client, against a cluster started with plain `cadre start -n 4`
/// std::vector<double> means = client[cadre::all].apply_sync(mean, cadre::ref("samples"));
/// ```
///
/// C functions whose parameters and result are numbers (like cos from libm) need no export: they are called
/// through libffi.
#define CADRE_EXPORT(fn)                                                                                      \
  [[maybe_unused]] static const bool cadre_export_##fn = ::cadre::detail::register_export(                    \
      reinterpret_cast<const void*>(&(fn)),                                                                   \
      ::cadre::detail::thunk_of<decltype(&(fn)), ::cadre::detail::call_traits<decltype(&(fn))>::takes_ns,     \
                                ::cadre::detail::call_traits<decltype(&(fn))>::params>::value)
