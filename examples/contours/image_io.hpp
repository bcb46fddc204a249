// examples/contours/image_io.hpp — pictures in and out: decode to grayscale, encode PNG in memory (stb).
//
// The codecs are stb_image / stb_image_write from Debian's libstb-dev, linked as libstb
// (`pkg-config --cflags --libs stb`: -I/usr/include/stb -lstb), so no translation unit defines
// STB_IMAGE_IMPLEMENTATION. Grayscale is skimage.color.rgb2gray's, written out the way
// tests/contours_reference.py writes it, so both sides hand find_contours the same doubles.
#pragma once

#include <stb_image.h>
#include <stb_image_write.h>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace contours {

/// A grayscale picture, values in [0, 1]; element (row, col), stored row by row like numpy's.
using GrayImage = Eigen::Array<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// An 8-bit RGB picture, row by row, 3 bytes per pixel.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;

  RgbImage() = default;
  RgbImage(int w, int h) : width(w), height(h), pixels(std::size_t(w) * std::size_t(h) * 3) {}
  std::uint8_t* at(int row, int col) { return &pixels[(std::size_t(row) * std::size_t(width) + std::size_t(col)) * 3]; }
  const std::uint8_t* at(int row, int col) const {
    return &pixels[(std::size_t(row) * std::size_t(width) + std::size_t(col)) * 3];
  }
};

/// skimage.color.rgb2gray's weights (ITU-R BT.709 luma); they add up to 1.
inline constexpr double kRedWeight = 0.2125, kGreenWeight = 0.7154, kBlueWeight = 0.0721;

/// Reads a picture (PNG, JPEG, BMP, GIF, TGA, PNM, ...) as grayscale: 8-bit samples / 255, 16-bit
/// samples / 65535; colour pictures become 0.2125 R + 0.7154 G + 0.0721 B; alpha is ignored.
/// Throws std::runtime_error naming the file when it cannot be read.
GrayImage read_gray(const std::string& path);

/// The same, from the bytes of an encoded picture.
GrayImage decode_gray(std::span<const std::uint8_t> encoded);

/// Decodes a picture into 8-bit RGB (gray pictures have R = G = B).
RgbImage decode_rgb(std::span<const std::uint8_t> encoded);

/// Encodes as PNG, in memory.
std::vector<std::uint8_t> encode_png(const RgbImage& image);

/// Writes a grayscale picture as an 8-bit grayscale PNG file (values rounded to 1/255).
void write_gray_png(const std::string& path, const GrayImage& image);

/// Whole files as bytes.
std::vector<std::uint8_t> read_file(const std::string& path);
void write_file(const std::string& path, std::span<const std::uint8_t> bytes);

// =============================================================================================
// Implementation
// =============================================================================================

namespace detail {

struct StbFree {
  void operator()(void* p) const noexcept { stbi_image_free(p); }
};

/// Samples (8- or 16-bit) to grayscale. `scale` is 255 or 65535.
template <class Sample>
GrayImage to_gray(const Sample* data, int width, int height, int channels, double scale) {
  GrayImage g(height, width);
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) {
      const Sample* p = data + (std::size_t(r) * std::size_t(width) + std::size_t(c)) * std::size_t(channels);
      if (channels < 3) {
        g(r, c) = double(p[0]) / scale;  // gray, or gray + alpha
      } else {
        const double red = double(p[0]) / scale, green = double(p[1]) / scale, blue = double(p[2]) / scale;
        // Evaluated left to right, as numpy evaluates the same expression in contours_reference.py.
        g(r, c) = kRedWeight * red + kGreenWeight * green + kBlueWeight * blue;
      }
    }
  return g;
}

[[noreturn]] inline void fail(const std::string& what) {
  const char* why = stbi_failure_reason();
  throw std::runtime_error(what + ": " + (why ? why : "unknown error"));
}

}  // namespace detail

inline GrayImage read_gray(const std::string& path) {
  int w = 0, h = 0, n = 0;
  if (stbi_is_16_bit(path.c_str())) {
    std::unique_ptr<stbi_us, detail::StbFree> data(stbi_load_16(path.c_str(), &w, &h, &n, 0));
    if (!data) detail::fail("cannot read picture '" + path + "'");
    return detail::to_gray(data.get(), w, h, n, 65535.0);
  }
  std::unique_ptr<stbi_uc, detail::StbFree> data(stbi_load(path.c_str(), &w, &h, &n, 0));
  if (!data) detail::fail("cannot read picture '" + path + "'");
  return detail::to_gray(data.get(), w, h, n, 255.0);
}

inline GrayImage decode_gray(std::span<const std::uint8_t> encoded) {
  int w = 0, h = 0, n = 0;
  const auto* bytes = encoded.data();
  const int len = int(encoded.size());
  if (stbi_is_16_bit_from_memory(bytes, len)) {
    std::unique_ptr<stbi_us, detail::StbFree> data(stbi_load_16_from_memory(bytes, len, &w, &h, &n, 0));
    if (!data) detail::fail("cannot decode picture");
    return detail::to_gray(data.get(), w, h, n, 65535.0);
  }
  std::unique_ptr<stbi_uc, detail::StbFree> data(stbi_load_from_memory(bytes, len, &w, &h, &n, 0));
  if (!data) detail::fail("cannot decode picture");
  return detail::to_gray(data.get(), w, h, n, 255.0);
}

inline RgbImage decode_rgb(std::span<const std::uint8_t> encoded) {
  int w = 0, h = 0, n = 0;
  std::unique_ptr<stbi_uc, detail::StbFree> data(stbi_load_from_memory(encoded.data(), int(encoded.size()), &w, &h, &n, 3));
  if (!data) detail::fail("cannot decode picture");
  RgbImage out(w, h);
  std::copy_n(data.get(), out.pixels.size(), out.pixels.begin());
  return out;
}

inline std::vector<std::uint8_t> encode_png(const RgbImage& image) {
  std::vector<std::uint8_t> out;
  auto append = [](void* context, void* data, int size) {
    auto* v = static_cast<std::vector<std::uint8_t>*>(context);
    const auto* p = static_cast<const std::uint8_t*>(data);
    v->insert(v->end(), p, p + size);
  };
  if (!stbi_write_png_to_func(append, &out, image.width, image.height, 3, image.pixels.data(), image.width * 3))
    throw std::runtime_error("cannot encode a " + std::to_string(image.width) + "x" + std::to_string(image.height) + " PNG");
  return out;
}

inline void write_gray_png(const std::string& path, const GrayImage& image) {
  const int w = int(image.cols()), h = int(image.rows());
  std::vector<std::uint8_t> px(std::size_t(w) * std::size_t(h));
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) px[std::size_t(r) * std::size_t(w) + std::size_t(c)] = std::uint8_t(std::lround(std::clamp(image(r, c), 0.0, 1.0) * 255));
  if (!stbi_write_png(path.c_str(), w, h, 1, px.data(), w)) throw std::runtime_error("cannot write '" + path + "'");
}

inline std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open '" + path + "'");
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string& path, std::span<const std::uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write '" + path + "'");
}

}  // namespace contours
