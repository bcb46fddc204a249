# cmake/pkgconfig.cmake — generates and installs cadre.pc, the pkg-config view of cadre::cadre.
#
# Requires names the dependencies' own .pc files (fmt, tbb, eigen3, libffi, and libdw when this
# build found it); Boost and cereal have none on Debian, and being header-only in the default include
# path they need no flags. The file goes to share/pkgconfig, pkg-config's place for
# architecture-independent modules (as eigen3.pc): cadre is headers only, with no library path.
# Engines resolve functions by their offset in a PIE executable with a build-id: Libs keeps the
# build-id; PIE is the compiler's default on Debian and Ubuntu (elsewhere add -fPIE -pie).

set(CADRE_PKGCONFIG_DIR ${CMAKE_INSTALL_DATADIR}/pkgconfig
  CACHE STRING "Where cadre.pc is installed, relative to the prefix")

set(CADRE_PC_REQUIRES "fmt, tbb, eigen3 >= 3.3, libffi")
set(CADRE_PC_CFLAGS "")
if(CADRE_HAVE_LIBDW)
  string(APPEND CADRE_PC_REQUIRES ", libdw")
  set(CADRE_PC_CFLAGS " -DCADRE_HAVE_LIBDW=1")
endif()

# ${pcfiledir}/<this> is the prefix; an absolute include dir is taken as it is.
if(IS_ABSOLUTE "${CADRE_PKGCONFIG_DIR}")
  message(FATAL_ERROR "cadre: CADRE_PKGCONFIG_DIR must be relative to the prefix, not ${CADRE_PKGCONFIG_DIR}")
endif()
file(RELATIVE_PATH CADRE_PC_TO_PREFIX "/${CADRE_PKGCONFIG_DIR}" "/")
string(REGEX REPLACE "/$" "" CADRE_PC_TO_PREFIX "${CADRE_PC_TO_PREFIX}")
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(CADRE_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(CADRE_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()

configure_file(${PROJECT_SOURCE_DIR}/cmake/cadre.pc.in ${PROJECT_BINARY_DIR}/cadre.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/cadre.pc DESTINATION ${CADRE_PKGCONFIG_DIR})
