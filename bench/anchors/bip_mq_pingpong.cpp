// bench/anchors/bip_mq_pingpong.cpp — Boost.Interprocess message_queue: 16-byte ping-pong RTT between two processes.
//
// What a C++ programmer gets from the shelf for cross-process messages (a mutex + condition variables
// in shared memory). Informational anchor for cadre's round trip.
//   bip_mq_pingpong [iterations=50000]
#include "anchor_common.hpp"

#include <boost/interprocess/ipc/message_queue.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace bip = boost::interprocess;

int main(int argc, char** argv) {
  const long iters = argc > 1 ? std::atol(argv[1]) : 50'000;
  const std::string ping_name = "cadre_anchor_ping_" + std::to_string(::getpid());
  const std::string pong_name = "cadre_anchor_pong_" + std::to_string(::getpid());
  struct Msg {
    char bytes[16];
  };
  int rc = 0;
  try {
    bip::message_queue::remove(ping_name.c_str());
    bip::message_queue::remove(pong_name.c_str());
    bip::message_queue ping(bip::create_only, ping_name.c_str(), 16, sizeof(Msg));
    bip::message_queue pong(bip::create_only, pong_name.c_str(), 16, sizeof(Msg));
    const pid_t parent = ::getpid();
    const pid_t child = ::fork();
    if (child == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(0);
      Msg m;
      std::size_t got = 0;
      unsigned prio = 0;
      for (;;) {
        ping.receive(&m, sizeof m, got, prio);
        if (m.bytes[0] == 'q') ::_exit(0);
        pong.send(&m, sizeof m, 0);
      }
    }
    Msg m;
    std::memset(&m, 'p', sizeof m);
    std::size_t got = 0;
    unsigned prio = 0;
    std::vector<double> rtt;
    rtt.reserve(std::size_t(iters));
    for (long i = -1000; i < iters; ++i) {
      const std::uint64_t t0 = anchor::now_ns();
      ping.send(&m, sizeof m, 0);
      pong.receive(&m, sizeof m, got, prio);
      if (i >= 0) rtt.push_back(double(anchor::now_ns() - t0));
    }
    m.bytes[0] = 'q';
    ping.send(&m, sizeof m, 0);
    int st = 0;
    ::waitpid(child, &st, 0);
    anchor::emit_rtt("bip_message_queue", rtt, "\"bytes\": 16, \"iterations\": " + std::to_string(iters));
  } catch (const std::exception& e) {
    anchor::emit_skip("bip_message_queue", e.what());
    rc = 1;
  }
  bip::message_queue::remove(ping_name.c_str());
  bip::message_queue::remove(pong_name.c_str());
  return rc;
}
