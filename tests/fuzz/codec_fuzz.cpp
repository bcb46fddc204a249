// tests/fuzz/codec_fuzz.cpp — libFuzzer target: cadre::decode<T> on arbitrary bytes, for a handful of T.
//
// Input: [selector byte][payload]. The selector picks T (see kTypes below); the payload goes to
// cadre::decode<T> as it is. Properties checked:
//   1. decode either returns or throws cadre::decode_error (any cadre::error is tolerated); anything
//      else (std::bad_alloc, std::length_error, a crash, UB, an out-of-bounds read) is a finding;
//   2. when decode succeeds, encode(value) decodes again, to the same value, and re-encoding that is
//      byte-identical (compared as bytes so NaN elements compare equal);
//   3. encoded_size(value) is exactly what encode appends;
//   4. for raw arrays, cadre::view<T> on a 16-byte aligned copy agrees with decode.
// Built and run by tools/fuzz; the seed corpus is tests/fuzz/corpus/codec_fuzz/ (tools/fuzz --seed
// regenerates it with the generator at the bottom of this file).
#include <cadre/codec.hpp>
#include <cadre/eigen.hpp>
#include <cadre/errors.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <typeinfo>
#include <vector>

namespace {

using Bytes = std::vector<std::byte>;

[[noreturn]] void finding(const char* type, const char* what) {
  std::fprintf(stderr, "codec_fuzz: decode<%s>: %s\n", type, what);
  std::abort();
}

template <class T>
Bytes encode_of(const T& v) {
  Bytes out;
  cadre::encode(v, out);
  return out;
}

/// Value equality where the type has a meaningful ==; raw arrays (which may hold NaN) are compared
/// by shape here and as bytes below.
template <class T>
bool same_value(const T& a, const T& b) {
  if constexpr (cadre::is_raw_array_v<T>)
    return a.size() == b.size();
  else
    return a == b;
}

/// The raw-array view must agree with decode, on 16-byte aligned input (as records are laid out).
template <class T>
void check_view(std::span<const std::byte> payload, const T* decoded, const char* type) {
  if constexpr (cadre::is_raw_array_v<T>) {
    Bytes aligned(payload.begin(), payload.end());  // operator new: 16-byte aligned
    bool viewed = false;
    try {
      auto v = cadre::view<T>(std::span<const std::byte>(aligned));
      viewed = true;
      if (!decoded) finding(type, "view succeeded where decode failed");
      const auto n = static_cast<std::size_t>(v.size());
      if (n != static_cast<std::size_t>(decoded->size())) finding(type, "view and decode disagree on the size");
      if (n && std::memcmp(v.data(), decoded->data(), n * sizeof(*v.data())) != 0)
        finding(type, "view and decode disagree on the elements");
    } catch (const cadre::error&) {
      if (decoded) finding(type, "view failed where decode succeeded (aligned input)");
    }
    (void)viewed;
  } else {
    (void)payload, (void)decoded, (void)type;
  }
}

template <class T>
void one(std::span<const std::byte> payload, const char* type) {
  std::optional<T> value;
  try {
    value.emplace(cadre::decode<T>(payload));
  } catch (const cadre::decode_error&) {
  } catch (const cadre::error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "codec_fuzz: decode<%s> threw %s: %s\n", type, typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    finding(type, "threw something not derived from std::exception");
  }
  check_view<T>(payload, value ? &*value : nullptr, type);
  if (!value) return;

  const Bytes once = encode_of(*value);
  if (cadre::encoded_size(*value) != once.size()) finding(type, "encoded_size differs from what encode appends");
  T again;
  try {
    again = cadre::decode<T>(once);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "codec_fuzz: decode<%s> rejects its own encoding: %s\n", type, e.what());
    std::abort();
  }
  if (!same_value(*value, again)) finding(type, "round trip changed the value");
  if (encode_of(again) != once) finding(type, "re-encoding a round-tripped value changed its bytes");
}

using Tuple = std::tuple<int, std::string, std::vector<int>>;

void run(std::uint8_t selector, std::span<const std::byte> p) {
  switch (selector % 9) {
    case 0: return one<std::vector<double>>(p, "std::vector<double>");
    case 1: return one<std::string>(p, "std::string");
    case 2: return one<std::map<std::string, int>>(p, "std::map<std::string,int>");
    case 3: return one<std::vector<std::string>>(p, "std::vector<std::string>");
    case 4: return one<Tuple>(p, "std::tuple<int,std::string,std::vector<int>>");
    case 5: return one<Eigen::MatrixXd>(p, "Eigen::MatrixXd");
    case 6: return one<std::optional<std::vector<int>>>(p, "std::optional<std::vector<int>>");
    case 7: return one<std::vector<bool>>(p, "std::vector<bool>");
    case 8: return one<Eigen::Matrix<float, 3, Eigen::Dynamic, Eigen::RowMajor>>(p, "Eigen::Matrix<float,3,Dynamic,RowMajor>");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  run(data[0], std::span<const std::byte>(reinterpret_cast<const std::byte*>(data) + 1, size - 1));
  return 0;
}

#ifdef CADRE_FUZZ_SEED_MAIN
// Seed generator (tools/fuzz --seed): writes valid encodings of each type to argv[1]/<n>.
#include <fstream>
namespace {
int seeds_written = 0;
template <class T>
void seed(const char* dir, std::uint8_t selector, const T& v) {
  Bytes b = encode_of(v);
  b.insert(b.begin(), std::byte{selector});
  std::ofstream f(std::string(dir) + "/seed-" + std::to_string(selector) + "-" + std::to_string(seeds_written++),
                  std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
}  // namespace
int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const char* d = argv[1];
  seed(d, 0, std::vector<double>{});
  seed(d, 0, std::vector<double>{1.5, -2.0, 3.25});
  seed(d, 1, std::string());
  seed(d, 1, std::string("hello, engine"));
  seed(d, 2, std::map<std::string, int>{{"a", 1}, {"bb", -2}, {"ccc", 3}});
  seed(d, 3, std::vector<std::string>{"x", "", "yz"});
  seed(d, 4, Tuple{7, "seven", {1, 2, 3}});
  Eigen::MatrixXd m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  seed(d, 5, m);
  seed(d, 5, Eigen::MatrixXd());
  seed(d, 6, std::optional<std::vector<int>>());
  seed(d, 6, std::optional<std::vector<int>>(std::vector<int>{4, 5}));
  seed(d, 7, std::vector<bool>{true, false, true});
  Eigen::Matrix<float, 3, Eigen::Dynamic, Eigen::RowMajor> f(3, 2);
  f << 1, 2, 3, 4, 5, 6;
  seed(d, 8, f);
  return 0;
}
#endif
