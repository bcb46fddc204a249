// examples/contours/marching_squares.hpp — iso-contours of a 2-D array: skimage.measure.find_contours, ported.
//
// A faithful port of scikit-image's marching squares (`_find_contours_cy.pyx` for the segments,
// `_find_contours.py` for joining them), so the output is the same list of contours, in the same
// order, with the same points: tests/contours_test.cpp checks it against skimage on real pictures.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace contours {

/// A point of a contour, in array coordinates: (row, col), where array element (r, c) sits at (r, c).
struct Point {
  double row = 0, col = 0;
  friend bool operator==(const Point&, const Point&) = default;
};

/// A polyline of points; a closed contour repeats its first point at the end.
using Contour = std::vector<Point>;

/// Which side of the level skimage's `fully_connected` and `positive_orientation` name.
enum class Side { low, high };

struct FindContoursOptions {
  /// Elements on this side of the level are 8-connected (the other side 4-connected): decides the
  /// saddle squares, where two diagonal corners are above the level and the other two are not.
  Side fully_connected = Side::low;
  /// Contours wind counter-clockwise around islands of elements on this side: with `low`, values
  /// below the level are on the left of the contour as it is walked.
  Side positive_orientation = Side::low;
};

/// The contours of `image` at `level`, as skimage.measure.find_contours(image, level) returns them:
/// marching squares with linear interpolation along the square edges; contours that leave the array
/// (or meet a NaN) are open, all others closed; ordered by where their first segment was found
/// (top to bottom, then left to right). Throws std::invalid_argument when the array is smaller than 2x2.
///
///     Eigen::ArrayXXd a = Eigen::ArrayXXd::Zero(3, 3);
///     a(0, 0) = 1;
///     auto cs = contours::find_contours(a, 0.5);    // {{{0, 0.5}, {0.5, 0}}}
template <class Derived>
std::vector<Contour> find_contours(const Eigen::DenseBase<Derived>& image, double level, FindContoursOptions options = {});

// =============================================================================================
// Implementation
// =============================================================================================

namespace detail {

struct Segment {
  Point from, to;
};

// Same arithmetic as skimage's _get_fraction, so that a point shared by two squares is computed
// to the same double by both: the segments are then joined by exact equality of their ends.
inline double fraction(double from_value, double to_value, double level) {
  if (to_value == from_value) return 0;
  return (level - from_value) / (to_value - from_value);
}

/// _get_contour_segments: every square (r0, c0)..(r0 + 1, c0 + 1), row by row, adds the segments
/// where the level crosses it, oriented so that the lower values are on the left (tail to head).
template <class Derived>
std::vector<Segment> contour_segments(const Eigen::DenseBase<Derived>& a, double level, bool vertex_connect_high) {
  std::vector<Segment> segments;
  for (Eigen::Index r0 = 0; r0 + 1 < a.rows(); ++r0) {
    for (Eigen::Index c0 = 0; c0 + 1 < a.cols(); ++c0) {
      const Eigen::Index r1 = r0 + 1, c1 = c0 + 1;
      const double ul = double(a(r0, c0)), ur = double(a(r0, c1)), ll = double(a(r1, c0)), lr = double(a(r1, c1));
      if (std::isnan(ul) || std::isnan(ur) || std::isnan(ll) || std::isnan(lr)) continue;

      // Corners above the level, as bits: ul 1, ur 2, ll 4, lr 8.
      const int square_case = (ul > level) + 2 * (ur > level) + 4 * (ll > level) + 8 * (lr > level);
      if (square_case == 0 || square_case == 15) continue;

      const double rr0 = double(r0), rr1 = double(r1), cc0 = double(c0), cc1 = double(c1);
      const Point top{rr0, cc0 + fraction(ul, ur, level)};
      const Point bottom{rr1, cc0 + fraction(ll, lr, level)};
      const Point left{rr0 + fraction(ul, ll, level), cc0};
      const Point right{rr0 + fraction(ur, lr, level), cc1};

      switch (square_case) {
        case 1: segments.push_back({top, left}); break;
        case 2: segments.push_back({right, top}); break;
        case 3: segments.push_back({right, left}); break;
        case 4: segments.push_back({left, bottom}); break;
        case 5: segments.push_back({top, bottom}); break;
        case 6:  // saddle: ur and ll above
          if (vertex_connect_high) {
            segments.push_back({left, top});
            segments.push_back({right, bottom});
          } else {
            segments.push_back({right, top});
            segments.push_back({left, bottom});
          }
          break;
        case 7: segments.push_back({right, bottom}); break;
        case 8: segments.push_back({bottom, right}); break;
        case 9:  // saddle: ul and lr above
          if (vertex_connect_high) {
            segments.push_back({top, right});
            segments.push_back({bottom, left});
          } else {
            segments.push_back({top, left});
            segments.push_back({bottom, right});
          }
          break;
        case 10: segments.push_back({bottom, top}); break;
        case 11: segments.push_back({bottom, left}); break;
        case 12: segments.push_back({left, right}); break;
        case 13: segments.push_back({top, right}); break;
        case 14: segments.push_back({left, top}); break;
        default: break;
      }
    }
  }
  return segments;
}

struct PointHash {
  std::size_t operator()(const Point& p) const noexcept {
    // + 0.0 turns -0.0 into 0.0: equal points must hash alike, as they do in a Python dict.
    const std::size_t h = std::hash<double>{}(p.row + 0.0);
    return h ^ (std::hash<double>{}(p.col + 0.0) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
};

/// _assemble_contours, step for step. Python's dicts `starts` and `ends` map a contour's first and
/// last point to (contour, creation number); contours are kept by creation number and never freed,
/// because, as in Python, a dict entry may still name a contour that a join has already absorbed.
inline std::vector<Contour> assemble_contours(const std::vector<Segment>& segments) {
  std::vector<std::deque<Point>> store;  // by creation number
  std::vector<bool> kept;                // still in Python's `contours` dict
  std::unordered_map<Point, std::size_t, PointHash> starts, ends;

  auto pop = [](auto& dict, const Point& p) -> std::optional<std::size_t> {
    auto it = dict.find(p);
    if (it == dict.end()) return std::nullopt;
    std::size_t n = it->second;
    dict.erase(it);
    return n;
  };

  for (const auto& [from, to] : segments) {
    // Degenerate: one corner exactly at the level, the others all above or all below; the
    // neighbouring squares pick that corner up.
    if (from == to) continue;

    const std::optional<std::size_t> tail = pop(starts, to);  // a contour that starts where we end
    const std::optional<std::size_t> head = pop(ends, from);  // a contour that ends where we start

    if (tail && head) {
      if (*tail == *head) {
        store[*head].push_back(to);  // closes the contour
      } else if (*tail > *head) {
        // Keep the contour found first, so the output stays in scan order: append tail to head.
        auto& h = store[*head];
        const auto& t = store[*tail];
        h.insert(h.end(), t.begin(), t.end());
        kept[*tail] = false;
        starts[h.front()] = *head;
        ends[h.back()] = *head;
      } else {
        // Prepend head to tail.
        auto& t = store[*tail];
        const auto& h = store[*head];
        t.insert(t.begin(), h.begin(), h.end());
        starts.erase(h.front());  // h.front() may be `to`, already popped
        kept[*head] = false;
        starts[t.front()] = *tail;
        ends[t.back()] = *tail;
      }
    } else if (!tail && !head) {
      const std::size_t n = store.size();
      store.push_back({from, to});
      kept.push_back(true);
      starts[from] = n;
      ends[to] = n;
    } else if (!head) {
      store[*tail].push_front(from);
      starts[from] = *tail;
    } else {
      store[*head].push_back(to);
      ends[to] = *head;
    }
  }

  std::vector<Contour> out;
  for (std::size_t n = 0; n < store.size(); ++n)
    if (kept[n]) out.emplace_back(store[n].begin(), store[n].end());
  return out;
}

}  // namespace detail

template <class Derived>
std::vector<Contour> find_contours(const Eigen::DenseBase<Derived>& image, double level, FindContoursOptions options) {
  if (image.rows() < 2 || image.cols() < 2)
    throw std::invalid_argument("find_contours: the array is " + std::to_string(image.rows()) + "x" +
                                std::to_string(image.cols()) + "; it must be at least 2x2");
  auto contours = detail::assemble_contours(
      detail::contour_segments(image, level, options.fully_connected == Side::high));
  if (options.positive_orientation == Side::high)
    for (auto& c : contours) std::reverse(c.begin(), c.end());
  return contours;
}

}  // namespace contours
