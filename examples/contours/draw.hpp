// examples/contours/draw.hpp — contours drawn over a picture: gray to RGB, polylines in a bright colour.
#pragma once

#include "image_io.hpp"
#include "marching_squares.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace contours {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

/// The picture as RGB, each value rounded to 1/255 (R = G = B, so a saturated colour drawn over it
/// always differs from it).
inline RgbImage gray_to_rgb(const GrayImage& gray) {
  RgbImage out(int(gray.cols()), int(gray.rows()));
  for (int r = 0; r < out.height; ++r)
    for (int c = 0; c < out.width; ++c) {
      const auto v = std::uint8_t(std::lround(std::clamp(gray(r, c), 0.0, 1.0) * 255));
      std::uint8_t* p = out.at(r, c);
      p[0] = p[1] = p[2] = v;
    }
  return out;
}

/// Sets the pixels of a `width`-pixel square centred on (row, col); what falls outside is clipped.
inline void plot(RgbImage& image, long row, long col, Rgb colour, int width = 1) {
  const long lo = -(width - 1) / 2, hi = width / 2;
  for (long dr = lo; dr <= hi; ++dr)
    for (long dc = lo; dc <= hi; ++dc) {
      const long r = row + dr, c = col + dc;
      if (r < 0 || c < 0 || r >= image.height || c >= image.width) continue;
      std::uint8_t* p = image.at(int(r), int(c));
      p[0] = colour.r, p[1] = colour.g, p[2] = colour.b;
    }
}

/// A straight line from a to b (array coordinates; pixel (r, c) is centred on (r, c)): one pixel per
/// step along the longer axis, so the line has no gaps.
inline void draw_line(RgbImage& image, Point a, Point b, Rgb colour, int width = 1) {
  const double dr = b.row - a.row, dc = b.col - a.col;
  const long steps = std::max(1L, std::lround(std::ceil(std::max(std::abs(dr), std::abs(dc)))));
  for (long i = 0; i <= steps; ++i) {
    const double t = double(i) / double(steps);
    plot(image, std::lround(a.row + t * dr), std::lround(a.col + t * dc), colour, width);
  }
}

/// A contour as a polyline (closed contours end where they start, so they are drawn closed).
inline void draw_contour(RgbImage& image, const Contour& contour, Rgb colour, int width = 1) {
  if (contour.size() == 1) plot(image, std::lround(contour[0].row), std::lround(contour[0].col), colour, width);
  for (std::size_t i = 1; i < contour.size(); ++i) draw_line(image, contour[i - 1], contour[i], colour, width);
}

}  // namespace contours
