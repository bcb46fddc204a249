// cadre/eigen.hpp — cadre with Eigen: matrices and arrays pushed, scattered, gathered and read in place.
//
// Include it instead of (or after) <cadre/cadre.hpp> in a program that ships Eigen::Matrix or
// Eigen::Array values; the core header leaves Eigen out so that programs without it compile faster.
// It also caps Eigen's threads in each engine (ClusterOptions::threads_per_engine).
#pragma once

/// \file
/// ```cpp
/// Eigen::MatrixXd a = Eigen::MatrixXd::Random(400, 3);
/// cadre::Cluster cluster({.engines = 2});
/// auto rc = cluster.client();
/// rc[cadre::all].scatter("a", a);  // row blocks, written in place
/// Eigen::MatrixXd back = rc[cadre::all].gather<Eigen::MatrixXd>("a");
/// ```

#include <cadre/cadre.hpp>
#include <cadre/detail/wire/eigen_codec.hpp>
