// cadre/detail/launcher/spawn.hpp — starting one engine process: its argv, environment, signals and output.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdint>
#include <string>
#include <vector>

extern char** environ;

namespace cadre::detail {

/// Starts `path` as engine `id` of cluster `cluster` (posix_spawn: no shell, ever), with stdin from
/// /dev/null, stdout and stderr on `out_fd`, no blocked signals and default dispositions, and the
/// environment of this process plus CADRE_ENGINE_CLUSTER, CADRE_ENGINE_ID and OMP_NUM_THREADS.
/// Closes out_fd. Returns the pid, or -errno when the process could not be started.
inline pid_t spawn_engine_process(const std::string& path, const std::vector<std::string>& args,
                                  const std::string& cluster, int id, std::uint32_t threads,
                                  int out_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "CADRE_ENGINE_", 13) != 0 && std::strncmp(*e, "OMP_NUM_THREADS=", 16) != 0) env_store.emplace_back(*e);
  env_store.push_back("CADRE_ENGINE_CLUSTER=" + cluster);
  env_store.push_back("CADRE_ENGINE_ID=" + std::to_string(id));
  env_store.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  std::vector<char*> envp;
  envp.reserve(env_store.size() + 1);
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_store{path};
  for (const auto& a : args) arg_store.push_back(a);
  std::vector<char*> argv;
  argv.reserve(arg_store.size() + 1);
  for (auto& s : arg_store) argv.push_back(s.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, path.c_str(), &fa, &attr, argv.data(), envp.data());  // no shell, ever
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out_fd);
  return rc == 0 ? pid : -rc;
}

}  // namespace cadre::detail
