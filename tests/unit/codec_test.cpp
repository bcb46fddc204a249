// tests/codec_test.cpp — round trips, structural names, in-place views and corrupt-input handling
// of cadre/codec.hpp.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sys/types.h>

#include <cereal/types/map.hpp>
#include <gtest/gtest.h>

#include <cadre/codec.hpp>
#include <cadre/cereal.hpp>
#include <cadre/eigen.hpp>

namespace {

using bytes = std::vector<std::byte>;

template <class T>
bytes encoded(const T& v) {
  bytes out;
  cadre::encode(v, out);
  return out;
}

/// Equality that also works for Eigen arrays (whose == is coefficient-wise) and never compares
/// Eigen objects of different shapes.
template <class T>
bool same(const T& a, const T& b) {
  if constexpr (std::is_base_of_v<Eigen::DenseBase<T>, T>)
    return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
  else
    return a == b;
}

/// Encodes, checks encoded_size, decodes and compares; returns the payload.
template <class T>
bytes expect_round_trip(const T& v) {
  bytes out = encoded(v);
  EXPECT_EQ(out.size(), cadre::encoded_size(v)) << cadre::type_name<T>();
  EXPECT_TRUE(same(cadre::decode<T>(out), v)) << cadre::type_name<T>();
  return out;
}

/// Every strict prefix of a valid payload, and the payload plus one byte, must be a decode_error.
template <class T>
void expect_truncation_and_trailing_bytes_rejected(const T& v) {
  const bytes out = encoded(v);
  for (std::size_t n = 0; n < out.size(); ++n)
    EXPECT_THROW((void)cadre::decode<T>(std::span(out.data(), n)), cadre::decode_error)
        << cadre::type_name<T>() << " prefix of " << n << "/" << out.size() << " bytes";
  bytes longer = out;
  longer.push_back(std::byte{0});
  EXPECT_THROW((void)cadre::decode<T>(longer), cadre::decode_error)
      << cadre::type_name<T>() << " with a trailing byte";
}

std::uint64_t u64_at(const bytes& b, std::size_t offset) {
  std::uint64_t v;
  std::memcpy(&v, b.data() + offset, 8);
  return v;
}

void set_u64_at(bytes& b, std::size_t offset, std::uint64_t v) {
  std::memcpy(b.data() + offset, &v, 8);
}

}  // namespace

// A user type made transferable through cereal only.
namespace user {
struct Particle {
  std::string label;
  std::vector<double> position;
  int charge = 0;
  bool operator==(const Particle&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(label, position, charge);
  }
};

// A cereal type given a stable, cross-binary name by specializing codec on top of cereal_codec.
struct Tagged {
  std::map<std::string, int> counts;
  bool operator==(const Tagged&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(counts);
  }
};

// A type with a hand-written codec (no cereal at all).
struct Id {
  std::uint32_t value = 0;
  bool operator==(const Id&) const = default;
  bool operator<(const Id& o) const { return value < o.value; }
};
}  // namespace user

template <>
struct cadre::codec<user::Tagged> : cadre::cereal_codec<user::Tagged> {
  static std::string name() { return "user::Tagged/1"; }
};

template <>
struct cadre::codec<user::Id> {
  static constexpr std::size_t fixed_size = 4;
  static std::string name() { return "user::Id"; }
  static void encode(const user::Id& id, std::vector<std::byte>& out) {
    cadre::encode(id.value, out);
  }
  static user::Id decode(std::span<const std::byte> in) {
    return {cadre::decode<std::uint32_t>(in)};
  }
  static std::size_t size(const user::Id&) { return 4; }
};

// ---------------------------------------------------------------------------------------------
// Names and hashes
// ---------------------------------------------------------------------------------------------

TEST(codec, arithmetic_names_follow_size_and_signedness_not_spelling) {
  EXPECT_EQ(cadre::type_name<long>(), "i64");
  EXPECT_EQ(cadre::type_name<long long>(), "i64");
  EXPECT_EQ(cadre::type_name<std::int64_t>(), "i64");
  EXPECT_EQ(cadre::type_name<pid_t>(), "i32");
  EXPECT_EQ(cadre::type_name<int>(), "i32");
  EXPECT_EQ(cadre::type_name<short>(), "i16");
  EXPECT_EQ(cadre::type_name<std::int8_t>(), "i8");
  EXPECT_EQ(cadre::type_name<std::uint8_t>(), "u8");
  EXPECT_EQ(cadre::type_name<unsigned>(), "u32");
  EXPECT_EQ(cadre::type_name<unsigned long>(), "u64");
  EXPECT_EQ(cadre::type_name<std::size_t>(), "u64");
  EXPECT_EQ(cadre::type_name<char>(), "char");
  EXPECT_EQ(cadre::type_name<bool>(), "bool");
  EXPECT_EQ(cadre::type_name<float>(), "f32");
  EXPECT_EQ(cadre::type_name<double>(), "f64");
  EXPECT_EQ(cadre::type_name<long double>(), "f80");
  EXPECT_EQ(cadre::type_name<const double&>(), "f64");
}

TEST(codec, container_names_are_structural_and_nest) {
  EXPECT_EQ(cadre::type_name<std::string>(), "str");
  EXPECT_EQ(cadre::type_name<std::vector<double>>(), "vec<f64>");
  EXPECT_EQ(cadre::type_name<std::vector<long>>(), cadre::type_name<std::vector<long long>>());
  EXPECT_EQ(cadre::type_name<std::vector<bool>>(), "vec<bool>");
  EXPECT_EQ((cadre::type_name<std::array<float, 3>>()), "arr<f32,3>");
  EXPECT_EQ((cadre::type_name<std::array<std::string, 2>>()), "arr<str,2>");
  EXPECT_EQ((cadre::type_name<std::pair<int, std::string>>()), "pair<i32,str>");
  EXPECT_EQ((cadre::type_name<std::tuple<int, double, char>>()), "tuple<i32,f64,char>");
  EXPECT_EQ(cadre::type_name<std::tuple<>>(), "tuple<>");
  EXPECT_EQ(cadre::type_name<std::optional<std::vector<int>>>(), "opt<vec<i32>>");
  EXPECT_EQ((cadre::type_name<std::map<std::string, std::vector<int>>>()), "map<str,vec<i32>>");
  EXPECT_EQ((cadre::type_name<std::unordered_map<int, std::optional<double>>>()),
            "umap<i32,opt<f64>>");
  EXPECT_EQ(cadre::type_name<std::set<std::string>>(), "set<str>");
  EXPECT_EQ(cadre::type_name<std::unordered_set<unsigned short>>(), "uset<u16>");
  EXPECT_EQ(cadre::type_name<std::vector<std::vector<std::string>>>(), "vec<vec<str>>");
}

TEST(codec, eigen_names_carry_scalar_shape_and_storage_order) {
  EXPECT_EQ(cadre::type_name<Eigen::MatrixXd>(), "eigen<f64,-1,-1,colmajor>");
  EXPECT_EQ(cadre::type_name<Eigen::VectorXd>(), "eigen<f64,-1,1,colmajor>");
  EXPECT_EQ(cadre::type_name<Eigen::RowVectorXf>(), "eigen<f32,1,-1,rowmajor>");
  EXPECT_EQ((cadre::type_name<Eigen::Matrix<int, 3, 4, Eigen::RowMajor>>()),
            "eigen<i32,3,4,rowmajor>");
  EXPECT_EQ(cadre::type_name<Eigen::Matrix3d>(), "eigen<f64,3,3,colmajor>");
  EXPECT_EQ(cadre::type_name<Eigen::ArrayXXd>(), "eigenarr<f64,-1,-1,colmajor>");
}

TEST(codec, user_type_names_are_cereal_prefixed_or_user_chosen) {
  EXPECT_EQ(cadre::type_name<user::Particle>(), "cereal:user::Particle");
  EXPECT_EQ(cadre::type_name<user::Tagged>(), "user::Tagged/1");
  EXPECT_EQ(cadre::type_name<std::vector<user::Id>>(), "vec<user::Id>");
}

TEST(codec, type_hash_is_fnv1a_of_the_name) {
  const auto fnv = [](const std::string& s) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    return h;
  };
  EXPECT_EQ(cadre::type_hash<std::vector<double>>(), fnv("vec<f64>"));
  EXPECT_EQ(cadre::type_hash<long>(), cadre::type_hash<long long>());
  EXPECT_NE(cadre::type_hash<int>(), cadre::type_hash<unsigned>());
  EXPECT_NE(cadre::type_hash<std::vector<float>>(), cadre::type_hash<std::vector<double>>());
  static_assert(cadre::detail::codec_impl::fnv1a64("") == 0xcbf29ce484222325ull);
}

// ---------------------------------------------------------------------------------------------
// Scalars and strings
// ---------------------------------------------------------------------------------------------

TEST(codec, arithmetic_values_round_trip_in_exactly_sizeof_bytes) {
  EXPECT_EQ(expect_round_trip(true).size(), 1u);
  expect_round_trip(false);
  expect_round_trip('x');
  expect_round_trip(std::numeric_limits<std::int8_t>::min());
  expect_round_trip(std::numeric_limits<std::uint16_t>::max());
  expect_round_trip(-123456789);
  EXPECT_EQ(expect_round_trip(std::numeric_limits<std::int64_t>::min()).size(), 8u);
  expect_round_trip(std::numeric_limits<std::uint64_t>::max());
  expect_round_trip(3.5f);
  expect_round_trip(-0.0);
  expect_round_trip(std::numeric_limits<double>::infinity());
  expect_round_trip(1.25L);
  EXPECT_TRUE(std::isnan(cadre::decode<double>(encoded(std::nan("")))));
  // long and long long share a name, so they must share an encoding.
  EXPECT_EQ(cadre::decode<long long>(encoded(-5L)), -5LL);
}

TEST(codec, arithmetic_of_wrong_size_or_invalid_bool_is_a_decode_error) {
  expect_truncation_and_trailing_bytes_rejected(42);
  expect_truncation_and_trailing_bytes_rejected(2.5);
  expect_truncation_and_trailing_bytes_rejected(true);
  const bytes two{std::byte{2}};
  EXPECT_THROW((void)cadre::decode<bool>(two), cadre::decode_error);
}

TEST(codec, strings_round_trip_with_a_length_prefix) {
  const std::string s("a\0b", 3);
  const bytes out = expect_round_trip(s);
  ASSERT_EQ(out.size(), 8u + 3u);
  EXPECT_EQ(u64_at(out, 0), 3u);
  expect_round_trip(std::string());
  expect_round_trip(std::string(1000, 'z'));
  expect_truncation_and_trailing_bytes_rejected(std::string("hello"));
}

TEST(codec, encode_appends_after_existing_bytes) {
  bytes out{std::byte{7}, std::byte{8}};
  cadre::encode(std::string("hi"), out);
  cadre::encode(std::vector<int>{1, 2}, out);
  ASSERT_EQ(out.size(), 2u + 10u + 24u);
  EXPECT_EQ(out[0], std::byte{7});
  EXPECT_EQ(cadre::decode<std::string>(std::span(out).subspan(2, 10)), "hi");
  EXPECT_EQ(cadre::decode<std::vector<int>>(std::span(out).subspan(12)), (std::vector<int>{1, 2}));
}

// ---------------------------------------------------------------------------------------------
// Raw arrays
// ---------------------------------------------------------------------------------------------

TEST(codec, vector_of_doubles_round_trips_and_views_in_place) {
  const std::vector<double> v{1.5, -2.0, 3.25, 1e300};
  const bytes out = expect_round_trip(v);
  ASSERT_EQ(out.size(), cadre::detail::kRawHeader + v.size() * sizeof(double));
  EXPECT_EQ(u64_at(out, 0), v.size());
  EXPECT_EQ(u64_at(out, 8), 0u);

  const std::span<const double> view = cadre::view<std::vector<double>>(out);
  EXPECT_EQ(static_cast<const void*>(view.data()), static_cast<const void*>(out.data() + 16));
  ASSERT_EQ(view.size(), v.size());
  EXPECT_TRUE(std::equal(view.begin(), view.end(), v.begin()));
  static_assert(std::is_same_v<cadre::raw_element_t<std::vector<double>>, double>);
}

TEST(codec, raw_array_traits_select_contiguous_arithmetic_only) {
  static_assert(cadre::is_raw_array_v<std::vector<int>>);
  static_assert(cadre::is_raw_array_v<const std::vector<std::uint8_t>&>);
  static_assert(cadre::is_raw_array_v<std::array<float, 4>>);
  static_assert(cadre::is_raw_array_v<Eigen::MatrixXd>);
  static_assert(cadre::is_raw_array_v<Eigen::Array3i>);
  static_assert(!cadre::is_raw_array_v<std::vector<bool>>);
  static_assert(!cadre::is_raw_array_v<std::vector<std::string>>);
  static_assert(!cadre::is_raw_array_v<std::array<std::string, 2>>);
  static_assert(!cadre::is_raw_array_v<double>);
  static_assert(std::is_same_v<cadre::raw_element_t<Eigen::Matrix3f>, float>);
}

TEST(codec, empty_vector_is_a_bare_header_and_views_as_empty_span) {
  const bytes out = expect_round_trip(std::vector<std::int16_t>{});
  ASSERT_EQ(out.size(), 16u);
  EXPECT_TRUE(cadre::view<std::vector<std::int16_t>>(out).empty());
}

TEST(codec, raw_vectors_of_every_width_round_trip) {
  expect_round_trip(std::vector<char>{'a', 'b'});
  expect_round_trip(std::vector<std::uint8_t>{0, 255});
  expect_round_trip(std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), 0, 1});
  expect_round_trip(std::vector<float>(1000, 0.5f));
  expect_round_trip(std::vector<long double>{1.0L, -2.0L});
}

TEST(codec, raw_vector_headers_that_lie_are_decode_errors) {
  const bytes good = encoded(std::vector<double>{1, 2, 3});
  expect_truncation_and_trailing_bytes_rejected(std::vector<double>{1, 2, 3});

  bytes huge = good;  // count * 8 overflows size_t
  set_u64_at(huge, 0, std::uint64_t{1} << 62);
  EXPECT_THROW((void)cadre::decode<std::vector<double>>(huge), cadre::decode_error);
  EXPECT_THROW((void)cadre::view<std::vector<double>>(huge), cadre::decode_error);

  bytes max = good;
  set_u64_at(max, 0, std::numeric_limits<std::uint64_t>::max());
  EXPECT_THROW((void)cadre::decode<std::vector<double>>(max), cadre::decode_error);

  bytes reserved = good;
  set_u64_at(reserved, 8, 1);
  EXPECT_THROW((void)cadre::decode<std::vector<double>>(reserved), cadre::decode_error);

  bytes fewer = good;
  set_u64_at(fewer, 0, 2);
  EXPECT_THROW((void)cadre::view<std::vector<double>>(fewer), cadre::decode_error);
}

TEST(codec, decode_error_messages_name_the_type_and_the_problem) {
  bytes bad = encoded(std::vector<double>{1, 2, 3});
  set_u64_at(bad, 0, 4);
  try {
    (void)cadre::decode<std::vector<double>>(bad);
    FAIL() << "expected decode_error";
  } catch (const cadre::decode_error& e) {
    EXPECT_NE(std::string(e.what()).find("vec<f64>"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST(codec, misaligned_raw_payload_cannot_be_viewed_but_can_be_decoded) {
  const std::vector<double> v{1, 2};
  const bytes good = encoded(v);
  bytes shifted(good.size() + 1);
  std::memcpy(shifted.data() + 1, good.data(), good.size());
  const std::span<const std::byte> payload(shifted.data() + 1, good.size());
  EXPECT_THROW((void)cadre::view<std::vector<double>>(payload), cadre::decode_error);
  EXPECT_EQ(cadre::decode<std::vector<double>>(payload), v);
}

TEST(codec, std_array_round_trips_checks_its_count_and_views_in_place) {
  const std::array<int, 4> a{1, -2, 3, -4};
  const bytes out = expect_round_trip(a);
  ASSERT_EQ(out.size(), 16u + 16u);
  EXPECT_EQ(u64_at(out, 0), 4u);
  const auto view = cadre::view<std::array<int, 4>>(out);
  EXPECT_EQ(static_cast<const void*>(view.data()), static_cast<const void*>(out.data() + 16));
  EXPECT_TRUE(std::equal(view.begin(), view.end(), a.begin()));
  expect_round_trip(std::array<double, 0>{});
  expect_truncation_and_trailing_bytes_rejected(a);

  // Same layout as a vector, so a vector of the wrong length is caught by the count check.
  const bytes three = encoded(std::vector<int>{1, 2, 3});
  EXPECT_THROW((void)(cadre::decode<std::array<int, 4>>(three)), cadre::decode_error);
  EXPECT_EQ(cadre::decode<std::vector<int>>(out), (std::vector<int>{1, -2, 3, -4}));
}

// ---------------------------------------------------------------------------------------------
// Eigen
// ---------------------------------------------------------------------------------------------

TEST(codec, eigen_dynamic_matrix_round_trips_and_views_in_place) {
  Eigen::MatrixXd m(3, 2);
  m << 1, 2, 3, 4, 5, 6;
  const bytes out = expect_round_trip(m);
  ASSERT_EQ(out.size(), 16u + 6 * 8u);
  EXPECT_EQ(u64_at(out, 0), 3u);
  EXPECT_EQ(u64_at(out, 8), 2u);
  const Eigen::Map<const Eigen::MatrixXd> map = cadre::view<Eigen::MatrixXd>(out);
  EXPECT_EQ(static_cast<const void*>(map.data()), static_cast<const void*>(out.data() + 16));
  EXPECT_EQ(map.rows(), 3);
  EXPECT_EQ(map.cols(), 2);
  EXPECT_EQ(Eigen::MatrixXd(map), m);
  expect_truncation_and_trailing_bytes_rejected(m);
}

TEST(codec, eigen_row_major_keeps_its_storage_order) {
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  const bytes out = expect_round_trip(m);
  float second;
  std::memcpy(&second, out.data() + 16 + sizeof(float), sizeof(float));
  EXPECT_EQ(second, 2.0f);  // row-major: (0,1) follows (0,0)
  EXPECT_EQ(cadre::view<decltype(m)>(out)(1, 0), 4.0f);
}

TEST(codec, eigen_fixed_vectors_and_arrays_round_trip) {
  expect_round_trip(Eigen::Vector2d(7, 8));  // M(rows, cols) would mean coefficients here
  expect_round_trip(Eigen::Matrix3d::Identity().eval());
  expect_round_trip(Eigen::Matrix4f::Constant(2.5f).eval());
  expect_round_trip(Eigen::VectorXi::LinSpaced(10, 0, 9).eval());
  expect_round_trip(Eigen::RowVectorXd::Ones(5).eval());
  expect_round_trip(Eigen::ArrayXXf::Constant(2, 3, 1.5f).eval());
  expect_round_trip(Eigen::MatrixXd(0, 4));
  expect_round_trip(Eigen::MatrixXd());
  const auto fixed_view = cadre::view<Eigen::Matrix3d>(encoded(Eigen::Matrix3d::Identity().eval()));
  (void)fixed_view;
  expect_truncation_and_trailing_bytes_rejected(Eigen::Vector2d(7, 8));
  static_assert(cadre::detail::codec_impl::fixed_size_v<Eigen::Matrix3d> == 16 + 9 * 8);
  static_assert(cadre::detail::codec_impl::fixed_size_v<Eigen::MatrixXd> == 0);
}

TEST(codec, eigen_dimension_mismatches_are_decode_errors) {
  const bytes m23 = encoded(Eigen::MatrixXd::Zero(2, 3).eval());
  EXPECT_THROW((void)cadre::decode<Eigen::Matrix3d>(m23), cadre::decode_error);
  EXPECT_THROW((void)cadre::decode<Eigen::VectorXd>(m23), cadre::decode_error);
  EXPECT_THROW(
      (void)(cadre::decode<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, 2, 2>>(m23)),
      cadre::decode_error);
  // A fixed matrix decodes as a dynamic one of the same scalar and order.
  EXPECT_EQ(cadre::decode<Eigen::MatrixXd>(encoded(Eigen::Matrix3d::Identity().eval())),
            Eigen::MatrixXd::Identity(3, 3));

  bytes overflow = m23;
  set_u64_at(overflow, 0, std::uint64_t{1} << 40);
  set_u64_at(overflow, 8, std::uint64_t{1} << 40);
  EXPECT_THROW((void)cadre::decode<Eigen::MatrixXd>(overflow), cadre::decode_error);
  bytes negative = m23;
  set_u64_at(negative, 0, std::numeric_limits<std::uint64_t>::max());
  set_u64_at(negative, 8, 0);
  EXPECT_THROW((void)cadre::view<Eigen::MatrixXd>(negative), cadre::decode_error);
}

// ---------------------------------------------------------------------------------------------
// Framed containers
// ---------------------------------------------------------------------------------------------

TEST(codec, vector_of_bools_is_one_byte_each_and_rejects_other_bytes) {
  const std::vector<bool> v{true, false, true, true};
  const bytes out = expect_round_trip(v);
  EXPECT_EQ(out.size(), 8u + 4u);
  expect_round_trip(std::vector<bool>{});
  expect_truncation_and_trailing_bytes_rejected(v);
  bytes bad = out;
  bad[9] = std::byte{3};
  EXPECT_THROW((void)cadre::decode<std::vector<bool>>(bad), cadre::decode_error);
}

TEST(codec, vectors_of_non_arithmetic_elements_round_trip) {
  expect_round_trip(std::vector<std::string>{"", "one", std::string(300, 'x')});
  expect_round_trip(std::vector<std::string>{});
  expect_round_trip(std::vector<std::vector<double>>{{}, {1.0}, {2.0, 3.0}});
  expect_round_trip(std::vector<std::vector<std::vector<int>>>{{{1}, {}}, {}});
  expect_round_trip(std::vector<std::optional<int>>{std::nullopt, 5});
  expect_round_trip(std::vector<Eigen::MatrixXd>{Eigen::MatrixXd::Ones(2, 2), Eigen::MatrixXd()});
  expect_round_trip(std::vector<std::tuple<>>(3));
  expect_truncation_and_trailing_bytes_rejected(std::vector<std::string>{"ab", "", "c"});
  expect_truncation_and_trailing_bytes_rejected(
      std::vector<std::vector<double>>{{1.0}, {2.0, 3.0}});
}

TEST(codec, fixed_size_elements_are_stored_without_length_prefixes) {
  const std::vector<std::pair<int, double>> v{{1, 1.5}, {2, 2.5}};
  EXPECT_EQ(expect_round_trip(v).size(), 8u + 2 * 12u);
  EXPECT_EQ(expect_round_trip(std::vector<std::array<float, 2>>{{1, 2}}).size(), 8u + 16u + 8u);
  EXPECT_EQ(expect_round_trip(std::vector<user::Id>{{1}, {2}, {3}}).size(), 8u + 12u);
  static_assert(cadre::detail::codec_impl::fixed_size_v<std::tuple<int, std::array<char, 2>>> ==
                4 + 16 + 2);
  static_assert(cadre::detail::codec_impl::fixed_size_v<std::pair<int, std::string>> == 0);
}

TEST(codec, huge_element_counts_are_rejected_before_allocating) {
  bytes out = encoded(std::vector<std::string>{"a"});
  set_u64_at(out, 0, std::uint64_t{1} << 60);
  EXPECT_THROW((void)cadre::decode<std::vector<std::string>>(out), cadre::decode_error);
  bytes pairs = encoded(std::vector<std::pair<int, int>>{{1, 2}});
  set_u64_at(pairs, 0, std::numeric_limits<std::uint64_t>::max());
  EXPECT_THROW((void)(cadre::decode<std::vector<std::pair<int, int>>>(pairs)), cadre::decode_error);
  bytes str = encoded(std::string("abc"));
  set_u64_at(str, 0, std::numeric_limits<std::uint64_t>::max());
  EXPECT_THROW((void)cadre::decode<std::string>(str), cadre::decode_error);
}

TEST(codec, pairs_tuples_and_optionals_round_trip) {
  expect_round_trip(std::pair<int, std::string>{7, "seven"});
  expect_round_trip(std::make_tuple(1, 2.5, std::string("x"), std::vector<int>{1, 2}));
  expect_round_trip(std::tuple<>{});
  expect_round_trip(std::optional<std::string>{});
  expect_round_trip(std::optional<std::string>{"here"});
  expect_round_trip(std::optional<std::optional<int>>{std::optional<int>{}});
  EXPECT_EQ(encoded(std::optional<double>{}).size(), 1u);
  expect_truncation_and_trailing_bytes_rejected(std::pair<int, std::string>{7, "seven"});
  expect_truncation_and_trailing_bytes_rejected(
      std::make_tuple(std::string("a"), 1, std::vector<int>{1}));
  expect_truncation_and_trailing_bytes_rejected(std::optional<std::string>{"x"});
  expect_truncation_and_trailing_bytes_rejected(std::optional<int>{});
  const bytes bad_flag{std::byte{2}};
  EXPECT_THROW((void)cadre::decode<std::optional<int>>(bad_flag), cadre::decode_error);
}

TEST(codec, maps_and_sets_round_trip) {
  const std::map<std::string, std::vector<int>> m{{"a", {1, 2}}, {"b", {}}, {"", {3}}};
  expect_round_trip(m);
  expect_round_trip(std::map<int, int>{});
  expect_round_trip(std::unordered_map<int, std::string>{{1, "one"}, {2, "two"}, {3, ""}});
  expect_round_trip(std::set<std::string>{"x", "y"});
  expect_round_trip(std::unordered_set<double>{1.0, 2.0});
  expect_round_trip(std::map<user::Id, std::optional<std::map<int, std::string>>>{
      {{1}, std::nullopt}, {{2}, {{{5, "five"}}}}});
  expect_truncation_and_trailing_bytes_rejected(m);
  expect_truncation_and_trailing_bytes_rejected(
      std::unordered_map<int, std::string>{{1, "one"}, {2, "two"}});
  expect_truncation_and_trailing_bytes_rejected(std::set<int>{1, 2, 3});
}

TEST(codec, duplicate_map_keys_are_decode_errors) {
  // map<i32,i32> is laid out as a vector of fixed-size pairs, so this forges a duplicate key.
  const bytes dup = encoded(std::vector<std::pair<int, int>>{{1, 10}, {1, 20}});
  EXPECT_THROW((void)(cadre::decode<std::map<int, int>>(dup)), cadre::decode_error);
  EXPECT_THROW((void)(cadre::decode<std::unordered_map<int, int>>(dup)), cadre::decode_error);
  EXPECT_EQ((cadre::decode<std::map<int, int>>(
                encoded(std::vector<std::pair<int, int>>{{1, 10}, {2, 20}}))),
            (std::map<int, int>{{1, 10}, {2, 20}}));
}

TEST(codec, non_raw_std_arrays_round_trip) {
  expect_round_trip(std::array<std::string, 3>{"a", "", "ccc"});
  expect_round_trip(std::array<bool, 3>{true, false, true});
  expect_round_trip(std::array<std::vector<int>, 0>{});
  expect_truncation_and_trailing_bytes_rejected(std::array<std::string, 2>{"a", "b"});
}

// ---------------------------------------------------------------------------------------------
// User types
// ---------------------------------------------------------------------------------------------

TEST(codec, cereal_user_type_round_trips) {
  const user::Particle p{"electron", {0.5, 1.5, -2.0}, -1};
  expect_round_trip(p);
  expect_round_trip(user::Particle{});
  expect_round_trip(std::vector<user::Particle>{p, user::Particle{"proton", {}, 1}});
  expect_round_trip(std::map<std::string, user::Particle>{{"e", p}});
  expect_round_trip(user::Tagged{{{"x", 1}, {"y", 2}}});
  expect_truncation_and_trailing_bytes_rejected(p);
}

TEST(codec, hand_written_codec_nests_in_containers) {
  expect_round_trip(user::Id{42});
  expect_round_trip(std::optional<user::Id>{user::Id{7}});
  expect_round_trip(std::tuple<user::Id, std::string>{{9}, "nine"});
  expect_truncation_and_trailing_bytes_rejected(std::vector<user::Id>{{1}, {2}});
}

// ---------------------------------------------------------------------------------------------
// Corruption fuzz: any damage is a decode_error or a (possibly different) value, never a crash
// ---------------------------------------------------------------------------------------------

TEST(codec, random_corruption_never_escapes_as_anything_but_decode_error) {
  using Nested =
      std::map<std::string, std::tuple<std::vector<double>, std::optional<std::vector<std::string>>,
                                       std::vector<bool>, Eigen::MatrixXf,
                                       std::unordered_map<int, std::array<short, 3>>>>;
  Nested value;
  value["first"] = {{1, 2, 3},
                    std::vector<std::string>{"a", "bb"},
                    {true, false},
                    Eigen::MatrixXf::Ones(2, 2),
                    {{1, {1, 2, 3}}}};
  value["second"] = {{}, std::nullopt, {}, Eigen::MatrixXf(), {}};
  const bytes good = expect_round_trip(value);

  std::mt19937_64 rng(12345);
  int decoded = 0, rejected = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    bytes bad = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bad[rng() % bad.size()] = static_cast<std::byte>(rng());
    if (rng() % 4 == 0) bad.resize(rng() % bad.size());
    try {
      (void)cadre::decode<Nested>(bad);
      ++decoded;
    } catch (const cadre::decode_error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(decoded + rejected, 20000);
}
