// A consumer that includes cadre, links against all of its usage requirements, and runs a cluster:
// `consumer` starts an embedded one (its engines re-execute this program); `consumer NAME` uses the
// running cluster NAME (e.g. from `cadre start`, whose engines are the generic cadre-engine).
#include <cadre/cadre.hpp>

#include <unistd.h>

#include <cstdio>
#include <set>
#include <vector>

namespace {
// Every engine answers from a process of its own, none of them this one.
int check_engines(const cadre::Client& rc, std::size_t expected) {
  const std::vector<pid_t> pids = rc[cadre::all].apply_sync(::getpid);
  const std::set<pid_t> distinct(pids.begin(), pids.end());
  if (pids.size() != expected || distinct.size() != expected || distinct.count(::getpid()) != 0) {
    std::fprintf(stderr, "consumer: expected %zu engine processes, got %zu answers from %zu processes\n",
                 expected, pids.size(), distinct.size());
    return 1;
  }
  std::printf("consumer: cadre %s (%d.%d.%d), %zu engines answered\n", cadre::version(), CADRE_VERSION_MAJOR,
              CADRE_VERSION_MINOR, CADRE_VERSION_PATCH, pids.size());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  cadre::init(argc, argv);  // engine processes serve here and exit
  if (argc > 1) {
    const cadre::Client rc{argv[1]};
    return check_engines(rc, rc.ids().size());
  }
  cadre::Cluster cluster({.engines = 2});
  return check_engines(cluster.client(), 2);
}
