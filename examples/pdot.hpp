// examples/pdot.hpp — the seed's exercise: a parallel matrix product on a DirectView, written as a user would.
#pragma once

#include <cadre/eigen.hpp>

#include <Eigen/Dense>

/// C = A * B on the view's engines: each engine gets a block of A's rows and all of B, multiplies
/// in place (its block of A and B are read straight from shared memory, its block of C is written
/// straight into it), and the row blocks of C are stacked back together.
inline Eigen::MatrixXd pdot(const cadre::DirectView& view, const Eigen::MatrixXd& A, const Eigen::MatrixXd& B) {
  view.scatter("A", A).get();
  view.push("B", B).get();
  view.execute([](cadre::Namespace& ns) {
    auto a = ns.view<Eigen::MatrixXd>("A");
    auto b = ns.view<Eigen::MatrixXd>("B");
    auto c = ns.allocate<Eigen::MatrixXd>("C", a.rows(), b.cols());  // in shared memory: gather reads it there
    c.noalias() = a * b;
  }).get();
  return view.gather<Eigen::MatrixXd>("C");
}
