// cadre/slice.hpp — choosing engines: rc[0], rc[-1], rc[cadre::all], rc[cadre::slice{1, cadre::end, 2}], rc[{3, 1}].
#pragma once

#include <climits>
#include <stdexcept>
#include <string>
#include <vector>

namespace cadre {

/// Stands for "to the end" in a slice: `cadre::slice{1, cadre::end, 2}` is Python's `1::2`.
inline constexpr int end = INT_MAX;

/// A Python-style slice of engine ids: start, stop (exclusive), step; negative values count from the end.
struct slice {
  int start = 0;   ///< the first engine id (negative: from the end)
  int stop = end;  ///< one past the last (exclusive); cadre::end for "to the end"
  int step = 1;    ///< the stride; negative goes backwards; 0 is std::out_of_range
};

/// Every engine: `rc[cadre::all]` is Python's `rc[:]`.
struct all_t {
  explicit constexpr all_t() = default;
};
inline constexpr all_t all{};  ///< every engine: `rc[cadre::all]`

namespace detail {

inline std::string valid_range(int n) {
  return n == 0 ? std::string("this cluster has no engines")
                : "this cluster has engines 0.." + std::to_string(n - 1) + " (or -" + std::to_string(n) + "..-1 from the end)";
}

/// The engine id that index i names among n engines; std::out_of_range if none.
inline int resolve_index(int i, int n) {
  const long r = i < 0 ? long(i) + n : long(i);
  if (r < 0 || r >= n) throw std::out_of_range("engine index " + std::to_string(i) + " is out of range: " + valid_range(n));
  return int(r);
}

/// The engine ids a slice selects among n engines (Python semantics); std::out_of_range for a zero
/// step or a slice that selects no engine.
inline std::vector<int> resolve_slice(const slice& s, int n) {
  if (s.step == 0)
    throw std::out_of_range("slice step cannot be zero (" + valid_range(n) + "); use 1, or a negative step to go backwards");
  auto clamp = [n](long v, bool up) -> long {
    if (v == end) return up ? n : n - 1;
    if (v < 0) v += n;
    return up ? std::min<long>(std::max<long>(v, 0), n) : std::min<long>(std::max<long>(v, -1), n - 1);
  };
  std::vector<int> ids;
  if (s.step > 0) {
    for (long i = clamp(s.start, true), stop = clamp(s.stop, true); i < stop; i += s.step) ids.push_back(int(i));
  } else {
    const long start = clamp(s.start, false);
    const long stop = s.stop == end ? -1 : clamp(s.stop, false);
    for (long i = start; i > stop; i += s.step) ids.push_back(int(i));
  }
  if (ids.empty())
    throw std::out_of_range("slice {" + std::to_string(s.start) + ", " + (s.stop == end ? std::string("end") : std::to_string(s.stop)) +
                            ", " + std::to_string(s.step) + "} selects no engine: " + valid_range(n));
  return ids;
}

/// Checks a list of ids: each in range (negative from the end); std::out_of_range otherwise.
inline std::vector<int> resolve_list(const std::vector<int>& ids, int n) {
  if (ids.empty()) throw std::out_of_range("an empty list of engines selects no engine: " + valid_range(n));
  std::vector<int> out;
  out.reserve(ids.size());
  for (int i : ids) out.push_back(resolve_index(i, n));
  return out;
}

}  // namespace detail
}  // namespace cadre
