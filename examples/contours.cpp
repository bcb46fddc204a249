// examples/contours.cpp — the seed's motivating example: the engines find the contours of pictures.
//
//   tools/get-sample-pictures build/pictures && build/examples/contours build/pictures
//   build/examples/contours [--out DIR] [--engines N] [PICTURE | DIRECTORY]...
//
// Each engine changes into this program's working directory (`%px cd {os.getcwd()}`), then reads a
// picture, finds its contours at a few levels (marching squares, as skimage.measure.find_contours),
// draws them over the picture and returns the PNG bytes. Engine 0 does the first picture
// (`e0.apply_async`), then the DirectView maps over one picture per engine (`engines.map_async`);
// results are written as contours-N.png as they arrive, and checked: each decodes, has its
// picture's size and differs from it exactly where contours were drawn. Exit code 1 on a mismatch.
//
// With no argument the pictures come from build/pictures (or pictures/, run from inside build/);
// when there are none, a few synthetic grayscale pictures are made so that the example always runs.
#include <cadre/eigen.hpp>

#include "contours/draw.hpp"
#include "contours/image_io.hpp"
#include "contours/marching_squares.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;

namespace {

/// The levels to contour, each with its colour.
struct Level {
  double value;
  contours::Rgb colour;
};
constexpr std::array kLevels = {
    Level{0.25, {0, 200, 255}},  // cyan
    Level{0.50, {255, 220, 0}},  // yellow
    Level{0.75, {255, 0, 160}},  // magenta
};
constexpr int kLineWidth = 1;

}  // namespace

// ---- what runs on the engines -----------------------------------------------------------------

/// `%px cd {os.getcwd()}`: relative picture paths then mean the same file on the engines as here.
int cadre_chdir(const std::string& dir) {
  if (::chdir(dir.c_str()) != 0) throw std::system_error(errno, std::generic_category(), "chdir to '" + dir + "'");
  return 0;
}

/// The notebook's get_contours_image: the picture with its contours drawn over it, as PNG bytes.
std::vector<std::uint8_t> contours_png(const std::string& path) {
  const contours::GrayImage gray = contours::read_gray(path);
  contours::RgbImage canvas = contours::gray_to_rgb(gray);
  for (const Level& level : kLevels)
    for (const contours::Contour& c : contours::find_contours(gray, level.value))
      contours::draw_contour(canvas, c, level.colour, kLineWidth);
  return contours::encode_png(canvas);
}

// ---- the client ---------------------------------------------------------------------------------

namespace {

int failures = 0;

void check(bool ok, std::string_view what) {
  fmt::print("  {} {}\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

bool is_picture(const fs::path& p) {
  static const std::set<std::string> kExtensions = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".pgm", ".ppm", ".pnm"};
  std::string ext = p.extension().string();
  for (char& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  // Skip this program's own output, in case it is written into a picture directory.
  return kExtensions.contains(ext) && !p.filename().string().starts_with("contours-");
}

/// The pictures a directory holds, sorted by name.
std::vector<std::string> pictures_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_picture(e.path())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// A temporary directory, removed with everything in it at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "contours-XXXXXX").string();
    if (!::mkdtemp(templ.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp " + templ);
    path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// A few smooth grayscale pictures with plenty of contours at 0.25, 0.5 and 0.75.
std::vector<std::string> make_synthetic_pictures(const fs::path& dir, int count) {
  const int n = 256;
  std::vector<std::string> out;
  for (int k = 0; k < count; ++k) {
    contours::GrayImage g(n, n);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) {
        const double y = double(r) / n, x = double(c) / n;
        double v = 0;
        switch (k % 4) {
          case 0:  // three Gaussian blobs
            v = 0.9 * std::exp(-((x - 0.3) * (x - 0.3) + (y - 0.35) * (y - 0.35)) / 0.02) +
                0.7 * std::exp(-((x - 0.7) * (x - 0.7) + (y - 0.6) * (y - 0.6)) / 0.03) +
                0.5 * std::exp(-((x - 0.35) * (x - 0.35) + (y - 0.8) * (y - 0.8)) / 0.01);
            break;
          case 1:  // concentric rings
            v = 0.5 + 0.45 * std::cos(std::hypot(x - 0.5, y - 0.5) * 40);
            break;
          case 2:  // an egg-crate
            v = 0.5 + 0.22 * (std::sin(x * 19) + std::cos(y * 13 + k));
            break;
          default:  // a ramp with a disc in it
            v = 0.1 + 0.8 * x;
            if (std::hypot(x - 0.5, y - 0.5) < 0.25) v = 1 - v;
        }
        g(r, c) = std::clamp(v, 0.0, 1.0);
      }
    const fs::path p = dir / fmt::format("synthetic-{}.png", k);
    contours::write_gray_png(p.string(), g);
    out.push_back(p.string());
  }
  return out;
}

/// The output decodes, has the picture's size, and differs from the picture exactly where a
/// contour was drawn: in one of the levels' colours, on at least one pixel.
void check_output(const std::vector<std::uint8_t>& png, const std::string& picture, const std::string& name) {
  const contours::GrayImage gray = contours::read_gray(picture);
  const contours::RgbImage base = contours::gray_to_rgb(gray);
  contours::RgbImage out;
  try {
    out = contours::decode_rgb(png);
  } catch (const std::exception& e) {
    check(false, fmt::format("{} decodes ({})", name, e.what()));
    return;
  }
  if (out.width != base.width || out.height != base.height) {
    check(false, fmt::format("{} is {}x{}, the picture {}x{}", name, out.width, out.height, base.width, base.height));
    return;
  }
  long drawn = 0, stray = 0;
  for (int r = 0; r < out.height; ++r)
    for (int c = 0; c < out.width; ++c) {
      const std::uint8_t* p = out.at(r, c);
      const std::uint8_t* q = base.at(r, c);
      if (p[0] == q[0] && p[1] == q[1] && p[2] == q[2]) continue;
      const contours::Rgb px{p[0], p[1], p[2]};
      bool is_contour = false;
      for (const Level& l : kLevels) is_contour |= px == l.colour;
      (is_contour ? drawn : stray)++;
    }
  check(drawn > 0 && stray == 0, fmt::format("{}: {}x{} like {}, {} contour pixels{}", name, out.width, out.height,
                                             fs::path(picture).filename().string(), drawn,
                                             stray ? fmt::format(", {} changed pixels that are no contour", stray) : ""));
}

void usage() {
  fmt::print(
      "usage: contours [--out DIR] [--engines N] [PICTURE | DIRECTORY]...\n"
      "  finds the contours of pictures on a cluster of engines; writes contours-N.png into DIR (default .)\n"
      "  with no pictures: build/pictures (fetch it with tools/get-sample-pictures), else synthetic ones\n");
}

/// The notebook's cells, in order.
int run(int argc, char** argv) {
  fs::path out_dir = ".";
  int n_engines = 4;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else if (a == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (a == "--engines" && i + 1 < argc) {
      const std::string_view v = argv[++i];
      if (std::from_chars(v.data(), v.data() + v.size(), n_engines).ec != std::errc{} || n_engines < 1) {
        fmt::print(stderr, "contours: --engines takes a positive number, not '{}'\n", v);
        return 2;
      }
    } else if (a == "--out" || a == "--engines") {
      fmt::print(stderr, "contours: {} needs a value\n", a);
      return 2;
    } else if (a.starts_with("-")) {
      fmt::print(stderr, "contours: unknown option '{}'\n", a);
      usage();
      return 2;
    } else {
      args.emplace_back(a);
    }
  }

  // get_pictures(...)
  std::vector<std::string> pictures;
  if (args.empty()) {
    for (const char* dir : {"build/pictures", "pictures"})
      if (fs::is_directory(dir) && (pictures = pictures_in(dir), !pictures.empty())) break;
  }
  for (const auto& a : args) {
    if (fs::is_directory(a)) {
      auto in = pictures_in(a);
      pictures.insert(pictures.end(), in.begin(), in.end());
    } else if (fs::is_regular_file(a)) {
      pictures.push_back(a);
    } else {
      fmt::print(stderr, "contours: no picture or directory '{}'\n", a);
      return 2;
    }
  }
  std::optional<TempDir> synthetic;
  if (pictures.empty()) {
    if (!args.empty()) {
      fmt::print(stderr, "contours: no pictures in {}\n", fmt::join(args, ", "));
      return 2;
    }
    synthetic.emplace();
    pictures = make_synthetic_pictures(synthetic->path, n_engines);
    fmt::print("no pictures in build/pictures or pictures/ (get some with `tools/get-sample-pictures build/pictures`); "
               "using {} synthetic ones\n", pictures.size());
  }
  fs::create_directories(out_dir);
  fmt::print("{} pictures: {}\n", pictures.size(), fmt::join(pictures, ", "));

  cadre::Cluster cluster({.engines = n_engines});
  cadre::Client rc = cluster.client();
  cadre::EngineView e0 = rc[0];
  cadre::DirectView engines = rc[cadre::all];

  fmt::print("\n## %px cd {{os.getcwd()}}\n");
  const std::string cwd = fs::current_path().string();
  engines.apply_sync(cadre_chdir, cwd);
  fmt::print("  {} engines in {}\n", engines.size(), cwd);

  fmt::print("\n## ar = e0.apply_async(get_contours_image, pictures[0]); ar.wait_interactive()\n");
  std::fflush(stdout);  // before the progress bar on stderr
  auto ar = e0.apply_async(contours_png, pictures[0]);
  ar.wait_interactive();
  const std::vector<std::uint8_t> first = ar.get();
  const std::string first_name = (out_dir / "contours-0.png").string();
  contours::write_file(first_name, first);
  check_output(first, pictures[0], first_name);

  fmt::print("\n## amr = engines.map_async(get_contours_image, pictures[:len(engines)]); amr.wait_interactive()\n");
  const std::vector<std::string> first_n(pictures.begin(), pictures.begin() + std::ptrdiff_t(std::min(pictures.size(), engines.size())));
  std::fflush(stdout);
  auto amr = engines.map_async(contours_png, first_n);
  amr.wait_interactive();
  fmt::print("\n## for pngdata in amr: display(Image(data=pngdata))\n");
  std::size_t i = 0;
  for (const std::vector<std::uint8_t>& png : amr) {
    const std::string name = (out_dir / fmt::format("contours-{}.png", i)).string();
    contours::write_file(name, png);
    check_output(png, first_n[i], name);
    if (i == 0) check(png == first, "engine 0 and the map drew pictures[0] byte for byte alike");
    ++i;
  }
  check(i == first_n.size(), fmt::format("{} results for {} pictures", i, first_n.size()));

  fmt::print("\n{}\n", failures == 0 ? fmt::format("contours: wrote {} pictures into {}", i, out_dir.string())
                                     : fmt::format("contours: {} checks failed", failures));
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  cadre::init(argc, argv);  // engine processes serve here and exit
  try {
    return run(argc, argv);  // the cluster is stopped and its segment removed on the way out, even on errors
  } catch (const std::exception& e) {
    fmt::print(stderr, "contours: {}\n", e.what());
    return 1;
  }
}
