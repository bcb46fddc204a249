// cadre/engine.hpp — cadre::init(): the line that lets any program be an engine.
#pragma once

#include <cadre/detail/engine/engine_loop.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace cadre {

/// Call first in main(). In a process that a Cluster started as an engine, serves the cluster until
/// it stops and then exits the process; in any other process, returns at once.
///
/// ```cpp
/// int main(int argc, char** argv) {
///   cadre::init(argc, argv);   // an engine serves here and exits; a client goes on
///   cadre::Client rc;
/// }
/// ```
inline void init(int argc = 0, char** argv = nullptr) {
  (void)argc, (void)argv;
  const char* cluster = std::getenv("CADRE_ENGINE_CLUSTER");
  const char* id_text = std::getenv("CADRE_ENGINE_ID");
  if (!cluster || !id_text) return;
  const std::string name = cluster;
  const long id = std::strtol(id_text, nullptr, 10);
  // Programs this engine starts are not engines.
  ::unsetenv("CADRE_ENGINE_CLUSTER");
  ::unsetenv("CADRE_ENGINE_ID");
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // output reaches the launcher line by line
  int code = 1;
  try {
    detail::Segment seg = detail::Segment::open(name, std::chrono::seconds(5));
    if (id < 0 || id >= long(seg.engines())) throw error("engine id " + std::to_string(id) + " is out of range");
    detail::Engine engine(std::move(seg), std::uint32_t(id));
    code = engine.serve();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cadre engine %ld of cluster '%s' cannot serve: %s\n", id, name.c_str(), e.what());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);  // the client's static destructors are not the engine's business
}

}  // namespace cadre
