// Must not compile: a type with only a cereal serialize function, shipped with the core header only.
// The error names <cadre/cereal.hpp>.
#include <cadre/cadre.hpp>

struct Point {
  double x = 0, y = 0;
  template <class Archive>
  void serialize(Archive& a) { a(x, y); }
};

int main() {
  std::vector<std::byte> out;
  cadre::encode(Point{}, out);
}
