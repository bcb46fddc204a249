// Must not compile: an Eigen matrix shipped with the core header only. The error names <cadre/eigen.hpp>.
#include <cadre/cadre.hpp>

#include <Eigen/Core>

int main() {
  std::vector<std::byte> out;
  cadre::encode(Eigen::MatrixXd(2, 2), out);
}
