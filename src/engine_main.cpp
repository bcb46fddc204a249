// src/engine_main.cpp — cadre-engine: the generic engine that `cadre start` runs when no --engine is given.
//
// It serves C functions with numeric signatures from any shared library (through libffi) and
// functions that shared libraries export with CADRE_EXPORT; see cadre/export.hpp.
#include <cadre/cadre.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  cadre::init(argc, argv);
  std::fprintf(stderr,
               "cadre-engine is started by `cadre start` (or a cadre::Cluster with .engine = \"cadre-engine\"); "
               "it is not meant to be run by hand.\n");
  return 2;
}
