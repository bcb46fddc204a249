// tests/doc_snippets_prelude.hpp — the names that README.md's and the headers' C++ examples use without
// declaring them, so that the build compiles every example (cmake/extract_snippets.py collects them).
// Declarations only: the examples are compiled, never linked or run.
#pragma once

#include <cadre/cadre.hpp>
#include <cadre/cereal.hpp>
#include <cadre/eigen.hpp>
#include <cadre/fmt.hpp>
#include <cadre/tbb.hpp>

#include <Eigen/Dense>
#include <cereal/cereal.hpp>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <numeric>
#include <ranges>
#include <span>
#include <string>
#include <vector>


namespace my {
struct Point {
  double x = 0, y = 0;
  template <class Archive>
  void serialize(Archive& a) { a(x, y); }
};
struct Id {
  long value = 0;
};
}  // namespace my

namespace cadre_doc {

using namespace std::chrono_literals;

int twice(int x);
long pow10(long x);
double mean(std::vector<double> xs);
void use(long y);
int f(int x);

extern int argc;
extern char** argv;
extern int x;
extern std::vector<long> xs;
extern cadre::Client rc, client;
extern cadre::DirectView all, dview, engines, odd, even, view;
extern cadre::EngineView e0;
extern cadre::LoadBalancedView lview;
extern cadre::AsyncResult<int> ar, ar1, ar2;
extern cadre::AsyncMapResult<long> amr;
extern cadre::Namespace& ns;
extern Eigen::MatrixXd a, b;
extern std::vector<int> v;
extern std::vector<int> out;
extern Eigen::MatrixXd A;
extern Eigen::Index rows, cols;
extern std::size_t n;
using T = double;
int fn(int);

}  // namespace cadre_doc
