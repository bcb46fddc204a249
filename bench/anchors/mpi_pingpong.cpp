// bench/anchors/mpi_pingpong.cpp — Open MPI, 2 ranks on this machine: 1-byte ping-pong RTT and 64 MiB bandwidth.
//
// The anchor for "a hot e0.apply_sync(noop) is no slower than MPI". Build with mpicxx; run:
//   mpirun --allow-run-as-root --oversubscribe -np 2 mpi_pingpong [iterations=20000]
#include "anchor_common.hpp"

#include <mpi.h>

#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0) anchor::emit_skip("mpi_pingpong", "needs exactly 2 ranks, got " + std::to_string(size));
    MPI_Finalize();
    return 0;
  }
  const int iters = argc > 1 ? std::atoi(argv[1]) : 20'000;
  const int peer = 1 - rank;

  // 1-byte latency.
  char b = 0;
  std::vector<double> rtt;
  rtt.reserve(std::size_t(iters));
  for (int i = -1000; i < iters; ++i) {  // negative i: warm-up
    if (rank == 0) {
      const double t0 = MPI_Wtime();
      MPI_Send(&b, 1, MPI_CHAR, peer, 0, MPI_COMM_WORLD);
      MPI_Recv(&b, 1, MPI_CHAR, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (i >= 0) rtt.push_back((MPI_Wtime() - t0) * 1e9);
    } else {
      MPI_Recv(&b, 1, MPI_CHAR, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(&b, 1, MPI_CHAR, peer, 0, MPI_COMM_WORLD);
    }
  }
  if (rank == 0) {
    const std::string extra = "\"bytes\": 1, \"iterations\": " + std::to_string(iters);
    anchor::emit_rtt("mpi_pingpong", rtt, extra);
    anchor::emit("mpi_pingpong", "latency_one_way_median", anchor::quantile(rtt, 0.5) / 2, "ns", extra);
  }

  // 64 MiB bandwidth: the buffer goes there and back; bandwidth = 2 × bytes / RTT.
  const std::size_t bytes = std::size_t(64) << 20;
  std::vector<char> buf(bytes, 1);
  std::vector<double> bw;
  for (int i = -2; i < 10; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      const double t0 = MPI_Wtime();
      MPI_Send(buf.data(), int(bytes), MPI_CHAR, peer, 1, MPI_COMM_WORLD);
      MPI_Recv(buf.data(), int(bytes), MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (i >= 0) bw.push_back(2.0 * double(bytes) / (MPI_Wtime() - t0));
    } else {
      MPI_Recv(buf.data(), int(bytes), MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), int(bytes), MPI_CHAR, peer, 1, MPI_COMM_WORLD);
    }
  }
  if (rank == 0) anchor::emit("mpi_pingpong", "bandwidth_64MiB_median", anchor::quantile(bw, 0.5), "B/s", "\"bytes\": 67108864");
  MPI_Finalize();
  return 0;
}
