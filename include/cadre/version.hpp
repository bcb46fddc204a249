// cadre/version.hpp — cadre's version, the one place it is written.
//
// CMakeLists.txt reads project(VERSION) from these three macros (as {fmt} reads its own header), so
// the headers stay usable with a bare -I path and no configure step, and cannot disagree with CMake.
#pragma once

#define CADRE_VERSION_MAJOR 0
#define CADRE_VERSION_MINOR 1
#define CADRE_VERSION_PATCH 0
/// One number that compares in order, as {fmt}'s FMT_VERSION: 1.2.3 is 10203.
#define CADRE_VERSION (CADRE_VERSION_MAJOR * 10000 + CADRE_VERSION_MINOR * 100 + CADRE_VERSION_PATCH)

#define CADRE_DETAIL_STRINGIZE(x) #x
#define CADRE_DETAIL_STRING(x) CADRE_DETAIL_STRINGIZE(x)

namespace cadre {
/// The version of these headers, "MAJOR.MINOR.PATCH" (what `cadre --version` prints).
inline constexpr const char* version() noexcept {
  return CADRE_DETAIL_STRING(CADRE_VERSION_MAJOR) "." CADRE_DETAIL_STRING(CADRE_VERSION_MINOR) "." CADRE_DETAIL_STRING(CADRE_VERSION_PATCH);
}
}  // namespace cadre
