// tests/contours_test.cpp — examples/contours: marching squares on hand-checked arrays, against scikit-image on real pictures, and the drawn PNG.
//
// The comparison with skimage.measure.find_contours runs tests/contours_reference.py with a python3
// that can `import skimage` ($CADRE_PYTHON, python3 on PATH, or /usr/bin/python3 — Debian's
// python3-skimage installs into the latter) on the sample pictures that skimage ships; without one
// those tests are skipped, saying so.
#include "../examples/contours/draw.hpp"
#include "../examples/contours/image_io.hpp"
#include "../examples/contours/marching_squares.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace {

using contours::Contour;
using contours::Point;
using contours::Side;

// ---- hand-checked arrays ----------------------------------------------------------------------

contours::GrayImage array(std::initializer_list<std::initializer_list<double>> rows) {
  contours::GrayImage a(Eigen::Index(rows.size()), Eigen::Index(rows.begin()->size()));
  Eigen::Index r = 0;
  for (const auto& row : rows) {
    Eigen::Index c = 0;
    for (double v : row) a(r, c++) = v;
    ++r;
  }
  return a;
}

TEST(contours, the_docstring_example_is_one_open_segment) {
  // skimage's own example: a corner element above the level.
  const auto cs = contours::find_contours(array({{1, 0, 0}, {0, 0, 0}, {0, 0, 0}}), 0.5);
  EXPECT_EQ(cs, (std::vector<Contour>{{{0, 0.5}, {0.5, 0}}}));
}

TEST(contours, an_island_gets_a_closed_contour_with_low_values_on_its_left) {
  // Squares are scanned row by row; the first segment, (1, 0.5) -> (0.5, 1), is found in square
  // (0, 0) and the others are prepended or appended until the last one closes the loop.
  const auto cs = contours::find_contours(array({{0, 0, 0, 0}, {0, 1, 1, 0}, {0, 1, 1, 0}, {0, 0, 0, 0}}), 0.5);
  const Contour expected = {{2.5, 2}, {2.5, 1}, {2, 0.5}, {1, 0.5}, {0.5, 1}, {0.5, 2}, {1, 2.5}, {2, 2.5}, {2.5, 2}};
  EXPECT_EQ(cs, std::vector<Contour>{expected});
}

TEST(contours, contours_leave_the_array_open_and_high_orientation_reverses_them) {
  const auto a = array({{0, 1}, {0, 1}, {0, 1}});
  EXPECT_EQ(contours::find_contours(a, 0.5), (std::vector<Contour>{{{2, 0.5}, {1, 0.5}, {0, 0.5}}}));
  EXPECT_EQ(contours::find_contours(a, 0.5, {.positive_orientation = Side::high}),
            (std::vector<Contour>{{{0, 0.5}, {1, 0.5}, {2, 0.5}}}));
}

TEST(contours, saddles_connect_the_side_that_is_fully_connected) {
  const auto nine = array({{1, 0}, {0, 1}});  // case 9: ul and lr above
  EXPECT_EQ(contours::find_contours(nine, 0.5),
            (std::vector<Contour>{{{0, 0.5}, {0.5, 0}}, {{1, 0.5}, {0.5, 1}}}));
  EXPECT_EQ(contours::find_contours(nine, 0.5, {.fully_connected = Side::high}),
            (std::vector<Contour>{{{0, 0.5}, {0.5, 1}}, {{1, 0.5}, {0.5, 0}}}));
  const auto six = array({{0, 1}, {1, 0}});  // case 6: ur and ll above
  EXPECT_EQ(contours::find_contours(six, 0.5),
            (std::vector<Contour>{{{0.5, 1}, {0, 0.5}}, {{0.5, 0}, {1, 0.5}}}));
  EXPECT_EQ(contours::find_contours(six, 0.5, {.fully_connected = Side::high}),
            (std::vector<Contour>{{{0.5, 0}, {0, 0.5}}, {{0.5, 1}, {1, 0.5}}}));
}

TEST(contours, two_pieces_found_apart_are_joined_into_the_older_one) {
  // Square (0, 0) starts contour 0, square (0, 1) contour 1; square (1, 1) links the end of 0 to
  // the start of 1, so 1 is appended to 0.
  const auto cs = contours::find_contours(array({{1, 0, 1}, {1, 0, 1}, {1, 1, 1}}), 0.5);
  EXPECT_EQ(cs, (std::vector<Contour>{{{0, 0.5}, {1, 0.5}, {1.5, 1}, {1, 1.5}, {0, 1.5}}}));
}

TEST(contours, elements_exactly_at_the_level_make_vertices_not_degenerate_segments) {
  // Only the centre is above 0.5; the contour runs through the four elements equal to it.
  const auto cs = contours::find_contours(array({{0, 0.5, 0}, {0.5, 1, 0.5}, {0, 0.5, 0}}), 0.5);
  EXPECT_EQ(cs, (std::vector<Contour>{{{2, 1}, {1, 0}, {0, 1}, {1, 2}, {2, 1}}}));
}

TEST(contours, nan_squares_are_skipped_and_tiny_arrays_rejected) {
  auto a = array({{0, 1, 1}, {0, 1, 1}});
  a(0, 2) = std::nan("");
  EXPECT_EQ(contours::find_contours(a, 0.5), (std::vector<Contour>{{{1, 0.5}, {0, 0.5}}}));
  EXPECT_THROW(contours::find_contours(contours::GrayImage::Zero(1, 5), 0.5), std::invalid_argument);
}

// ---- the drawn picture --------------------------------------------------------------------------

TEST(contours, the_png_decodes_to_the_picture_with_the_contours_drawn_over_it) {
  contours::GrayImage g(40, 60);
  for (int r = 0; r < 40; ++r)
    for (int c = 0; c < 60; ++c) g(r, c) = std::exp(-((r - 20.0) * (r - 20.0) + (c - 30.0) * (c - 30.0)) / 200.0);
  const auto cs = contours::find_contours(g, 0.5);
  ASSERT_EQ(cs.size(), 1u);
  ASSERT_EQ(cs[0].front(), cs[0].back()) << "a closed ring around the peak";

  contours::RgbImage canvas = contours::gray_to_rgb(g);
  const contours::RgbImage base = canvas;
  const contours::Rgb yellow{255, 220, 0};
  contours::draw_contour(canvas, cs[0], yellow);
  const std::vector<std::uint8_t> png = contours::encode_png(canvas);
  const contours::RgbImage back = contours::decode_rgb(png);
  ASSERT_EQ(back.width, 60);
  ASSERT_EQ(back.height, 40);
  EXPECT_EQ(back.pixels, canvas.pixels) << "PNG is lossless";

  // Every vertex's pixel is yellow, and nothing else changed colour but to yellow.
  for (const Point& p : cs[0]) {
    const std::uint8_t* px = back.at(int(std::lround(p.row)), int(std::lround(p.col)));
    EXPECT_EQ((contours::Rgb{px[0], px[1], px[2]}), yellow) << p.row << ", " << p.col;
  }
  long changed = 0;
  for (int r = 0; r < 40; ++r)
    for (int c = 0; c < 60; ++c)
      if (!std::equal(back.at(r, c), back.at(r, c) + 3, base.at(r, c))) {
        ++changed;
        EXPECT_EQ((contours::Rgb{back.at(r, c)[0], back.at(r, c)[1], back.at(r, c)[2]}), yellow);
      }
  EXPECT_GT(changed, 30);  // a ring of radius ~11.8 pixels
  EXPECT_LT(changed, 200);
}

// ---- against scikit-image -----------------------------------------------------------------------

std::string reference_script() {
#ifdef CADRE_SOURCE_DIR
  return CADRE_SOURCE_DIR "/tests/contours_reference.py";
#else
  return (std::filesystem::path(__FILE__).parent_path() / "contours_reference.py").string();
#endif
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

/// Runs a shell command; its standard output, or nullopt when it fails.
std::optional<std::string> capture(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return std::nullopt;
  std::string out;
  std::array<char, 1 << 16> buf;
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe.get())) out.append(buf.data(), n);
  const int status = ::pclose(pipe.release());
  if (status != 0) return std::nullopt;
  return out;
}

/// A python3 that can import skimage, or nullopt.
const std::optional<std::string>& python_with_skimage() {
  static const std::optional<std::string> found = [] () -> std::optional<std::string> {
    std::vector<std::string> candidates;
    if (const char* p = std::getenv("CADRE_PYTHON"); p && *p) candidates.push_back(p);
    candidates.push_back("python3");
    candidates.push_back("/usr/bin/python3");
    for (const auto& py : candidates)
      if (std::system((quoted(py) + " -c 'import skimage.io, skimage.measure' >/dev/null 2>&1").c_str()) == 0) return py;
    return std::nullopt;
  }();
  return found;
}

constexpr const char* kNoSkimage =
    "no python3 with scikit-image (tried $CADRE_PYTHON, python3, /usr/bin/python3); "
    "install it with `apt-get install python3-skimage`";

struct Reference {
  double level;
  std::vector<Contour> contours;
};

/// Parses contours_reference.py's output.
std::vector<Reference> parse_reference(const std::string& text) {
  std::vector<Reference> out;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    if (word != "level") throw std::runtime_error("contours_reference.py: expected 'level', got '" + word + "'");
    Reference ref;
    std::size_t count = 0;
    in >> ref.level >> word >> count;
    for (std::size_t i = 0; i < count; ++i) {
      std::size_t points = 0;
      in >> word >> points;
      Contour c(points);
      for (auto& p : c) in >> p.row >> p.col;
      ref.contours.push_back(std::move(c));
    }
    if (!in) throw std::runtime_error("contours_reference.py: truncated output");
    out.push_back(std::move(ref));
  }
  return out;
}

constexpr double kTolerance = 1e-6;

/// The largest coordinate difference between two contours of the same length.
double distance(const Contour& a, const Contour& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    d = std::max({d, std::abs(a[i].row - b[i].row), std::abs(a[i].col - b[i].col)});
  return d;
}

/// Same contours, same order, same points within kTolerance; the message says where they first differ.
std::optional<std::string> ordered_mismatch(const std::vector<Contour>& ours, const std::vector<Contour>& theirs, double& max_diff) {
  if (ours.size() != theirs.size()) return fmt::format("{} contours, skimage has {}", ours.size(), theirs.size());
  for (std::size_t i = 0; i < ours.size(); ++i) {
    if (ours[i].size() != theirs[i].size())
      return fmt::format("contour {} has {} points, skimage's {}", i, ours[i].size(), theirs[i].size());
    const double d = distance(ours[i], theirs[i]);
    max_diff = std::max(max_diff, d);
    if (d > kTolerance) return fmt::format("contour {} is {} away from skimage's", i, d);
  }
  return std::nullopt;
}

/// The same comparison, with both lists sorted first (contours in another order still match).
bool same_as_sets(std::vector<Contour> ours, std::vector<Contour> theirs) {
  auto less = [](const Contour& a, const Contour& b) {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](const Point& p, const Point& q) {
      return std::tie(p.row, p.col) < std::tie(q.row, q.col);
    });
  };
  std::sort(ours.begin(), ours.end(), less);
  std::sort(theirs.begin(), theirs.end(), less);
  double ignored = 0;
  return !ordered_mismatch(ours, theirs, ignored);
}

struct Case {
  const char* picture;
  contours::FindContoursOptions options;
  const char* name;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class contours_match_skimage : public ::testing::TestWithParam<Case> {};

TEST_P(contours_match_skimage, on_a_sample_picture_at_four_levels) {
  const auto& python = python_with_skimage();
  if (!python) GTEST_SKIP() << kNoSkimage;
  const auto data_dir = capture(quoted(*python) + " " + quoted(reference_script()) + " --data-dir");
  ASSERT_TRUE(data_dir) << "contours_reference.py --data-dir failed";
  const std::string picture = data_dir->substr(0, data_dir->find_last_not_of("\n") + 1) + "/" + GetParam().picture;
  if (!std::filesystem::exists(picture)) GTEST_SKIP() << "skimage has no " << picture;

  // 128/255 is exactly the value of a gray sample 128: squares with corners at the level, whose
  // degenerate segments and shared vertices exercise every join of the assembly.
  const std::array<double, 4> levels = {0.25, 0.5, 0.75, 128 / 255.0};
  const auto& o = GetParam().options;
  std::string command = quoted(*python) + " " + quoted(reference_script()) + " " + quoted(picture);
  for (double l : levels) command += fmt::format(" {:.17g}", l);
  command += fmt::format(" --fully-connected {} --positive-orientation {}", o.fully_connected == Side::high ? "high" : "low",
                         o.positive_orientation == Side::high ? "high" : "low");
  const auto text = capture(command);
  ASSERT_TRUE(text) << "failed: " << command;
  const std::vector<Reference> refs = parse_reference(*text);
  ASSERT_EQ(refs.size(), levels.size());

  const contours::GrayImage gray = contours::read_gray(picture);
  std::size_t n_contours = 0, n_points = 0;
  double max_diff = 0;
  int reordered = 0;
  for (std::size_t k = 0; k < levels.size(); ++k) {
    ASSERT_EQ(refs[k].level, levels[k]) << "the level went through text unchanged";
    const auto ours = contours::find_contours(gray, levels[k], o);
    if (const auto why = ordered_mismatch(ours, refs[k].contours, max_diff)) {
      // Not in skimage's order: still right if they are the same contours.
      const bool same = same_as_sets(ours, refs[k].contours);
      EXPECT_TRUE(same) << GetParam().picture << " at level " << levels[k] << ": " << *why;
      if (same) ++reordered;
    }
    n_contours += ours.size();
    for (const auto& c : ours) n_points += c.size();
  }
  fmt::print("  {} ({}): {} levels, {} contours, {} points as skimage's, {}, max |difference| {}\n",
             GetParam().picture, GetParam().name, levels.size(), n_contours, n_points,
             reordered ? fmt::format("{} levels in another order", reordered) : "in its order", max_diff);
}

INSTANTIATE_TEST_SUITE_P(
    pictures, contours_match_skimage,
    ::testing::Values(Case{"camera.png", {}, "camera"}, Case{"coins.png", {}, "coins"}, Case{"moon.png", {}, "moon"},
                      Case{"astronaut.png", {}, "astronaut"}, Case{"chelsea.png", {}, "chelsea"},
                      Case{"coffee.png", {}, "coffee"},
                      Case{"camera.png", {.fully_connected = Side::high, .positive_orientation = Side::high}, "camera_high"}),
    [](const ::testing::TestParamInfo<Case>& param) { return std::string(param.param.name); });

}  // namespace
