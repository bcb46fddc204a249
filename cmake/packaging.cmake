# cmake/packaging.cmake — CPack's Debian package: `cpack -G DEB` in a build tree (tools/package).
#
# The package is what the install rules put under /usr: headers, the CMake package, cadre.pc, the
# stripped `cadre` and `cadre-engine`, the licence (also as Debian's share/doc/cadre/copyright), and
# whatever else is an install() rule (man pages under share/man, for one).

set(CPACK_PACKAGE_NAME cadre)
set(CPACK_PACKAGE_VENDOR "cadre developers")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# The binaries ship stripped (what `cmake --install --strip` does); their debug information is left out.
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)   # cadre_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "cadre developers <dev@cadre.local>" CACHE STRING
  "The .deb's Maintainer field")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${PROJECT_HOMEPAGE_URL}" CACHE STRING "The .deb's Homepage field")
# The long description; the synopsis above is its first line in the control file.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "cadre turns one machine into a cluster of engine processes that a C++ program drives the way
IPython.parallel's DirectView drives Python engines, over shared memory. This package holds the
header-only client library (CMake package cadre::cadre, pkg-config module cadre), the `cadre`
command that starts, inspects and stops clusters, and the generic `cadre-engine`.")

# What `cadre` and `cadre-engine` load at run time (libtbb12, libfmt9, libffi8, libdw1, ...) comes
# from dpkg-shlibdeps; what a consumer compiles and links against is listed by hand: the -dev
# packages behind cadreConfig.cmake's find_dependency() calls and cadre.pc's Requires, and
# pkg-config, which both use to find libffi and libdw.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(_cadre_deb_depends
  "libboost-dev (>= 1.70)" "libtbb-dev" "libeigen3-dev (>= 3.3)" "libfmt-dev" "libcereal-dev"
  "libffi-dev" "pkg-config")
if(CADRE_HAVE_LIBDW)
  list(APPEND _cadre_deb_depends "libdw-dev")
endif()
list(JOIN _cadre_deb_depends ", " CPACK_DEBIAN_PACKAGE_DEPENDS)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "cmake (>= 3.22)")

set(CPACK_GENERATOR DEB)
include(CPack)
