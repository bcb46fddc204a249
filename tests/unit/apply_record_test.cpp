// tests/apply_record_test.cpp — the apply record: what the client writes, the engine reads back and runs; malformed records are refused.
//
// No engine processes: the records are written with the client's writers, read with the engine's
// reader, and run in this process (its code references resolve to its own functions).
#include <cadre/cadre.hpp>
#include <cadre/detail/wire/apply_record.hpp>
#include <cadre/detail/wire/ffi_call.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

namespace {

namespace detail = cadre::detail;
using Bytes = std::vector<std::byte>;

int add(int a, int b) { return a + b; }

double scale(double x, std::int32_t k) { return x * k; }

/// The record encode_apply writes when the engines run this program.
template <class F, class... Args>
Bytes thunk_form(F f, Args... args) {
  using CT = detail::call_traits<F, Args...>;
  constexpr detail::Thunk own = detail::thunk_of<typename CT::fn_type, CT::takes_ns, typename CT::params>::value;
  Bytes b;
  detail::Writer w(b);
  if constexpr (CT::is_fnptr) detail::put_function_call<own>(w, reinterpret_cast<const void*>(f), nullptr);
  else detail::put_object_call<own>(w, f);
  detail::put_args<typename CT::params>(w, args...);
  return b;
}

/// The record encode_apply writes for a C function when the engines run another program.
template <class R, class... A, class... Args>
Bytes ffi_form(R (*f)(A...), Args... args) {
  Bytes b;
  detail::Writer w(b);
  detail::ffi_call_writer<R, std::tuple<A...>>::put(w, detail::function_code_ref(reinterpret_cast<const void*>(f)), args...);
  return b;
}

/// The namespace that thunks and ffi calls see, as on an engine.
class EngineNamespace {
 public:
  EngineNamespace() : old_(detail::engine_context().ns) { detail::engine_context().ns = &ns_; }
  ~EngineNamespace() { detail::engine_context().ns = old_; }
  cadre::Namespace& get() { return ns_; }

 private:
  cadre::Namespace ns_;
  cadre::Namespace* old_;
};

/// Runs a record as Engine::run_apply does; returns the typed result's bytes.
Bytes run(std::span<const std::byte> record, cadre::Namespace& ns) {
  const detail::ApplyRecord rec = detail::read_apply_record(record);
  Bytes result;
  if (rec.mode == detail::CallMode::ffi) {
    detail::call_through_ffi(rec, result);
    return result;
  }
  const auto thunk = reinterpret_cast<detail::Thunk>(detail::resolve(detail::code_ref_of(rec.thunk)));
  void* fn = rec.fn.empty() ? nullptr : detail::resolve(detail::code_ref_of(rec.fn));
  detail::CallFrame frame{fn, rec.callable, rec.args, &ns, &result};
  thunk(frame);
  return result;
}

template <class T>
T result_of(const Bytes& typed) {
  return detail::decode_typed<T>(detail::parse_typed(typed), "result");
}

std::size_t offset_in(std::span<const std::byte> part, std::span<const std::byte> whole) {
  return std::size_t(part.data() - whole.data());
}

TEST(apply_record, a_function_pointer_reads_back_as_its_thunk_and_its_own_code_reference) {
  const Bytes b = thunk_form(&add, 2, 3);
  const detail::ApplyRecord rec = detail::read_apply_record(b);
  EXPECT_EQ(rec.mode, detail::CallMode::thunk);
  using CT = detail::call_traits<decltype(&add), int, int>;
  EXPECT_EQ(detail::resolve(detail::code_ref_of(rec.thunk)),
            reinterpret_cast<void*>(detail::thunk_of<CT::fn_type, CT::takes_ns, CT::params>::value));
  ASSERT_FALSE(rec.fn.empty());
  EXPECT_EQ(detail::resolve(detail::code_ref_of(rec.fn)), reinterpret_cast<void*>(&add));
  EXPECT_TRUE(rec.callable.empty());
  EXPECT_EQ(offset_in(rec.args, b) % detail::kArgsAlign, 0u);
  EngineNamespace ns;
  EXPECT_EQ(result_of<int>(run(b, ns.get())), 5);
}

TEST(apply_record, a_lambda_with_captures_travels_as_its_bytes_without_a_function_reference) {
  const int k = 7;
  const double half = 0.5;
  const auto f = [k, half](int x) { return x * k + half; };
  const Bytes b = thunk_form(f, 3);
  const detail::ApplyRecord rec = detail::read_apply_record(b);
  EXPECT_EQ(rec.mode, detail::CallMode::thunk);
  EXPECT_TRUE(rec.fn.empty());
  ASSERT_EQ(rec.callable.size(), sizeof f);
  EXPECT_EQ(std::memcmp(rec.callable.data(), &f, sizeof f), 0);
  EXPECT_EQ(offset_in(rec.args, b) % detail::kArgsAlign, 0u);
  EngineNamespace ns;
  EXPECT_EQ(result_of<double>(run(b, ns.get())), 21.5);
}

TEST(apply_record, an_argument_named_by_ref_is_read_from_the_engines_namespace) {
  EngineNamespace ns;
  ns.get().set("a", 40);
  const Bytes b = thunk_form(&add, cadre::ref("a"), 2);
  EXPECT_EQ(result_of<int>(run(b, ns.get())), 42);
}

TEST(apply_record, the_bytes_follow_the_documented_layout) {
  static_assert(std::uint8_t(detail::CallMode::thunk) == 0 && std::uint8_t(detail::CallMode::ffi) == 1);
  static_assert(detail::kNoFunction == 0 && detail::kHasFunction == 1);
  const auto f = [k = 3](int x) { return x + k; };
  const Bytes b = thunk_form(f, 1);
  ASSERT_GT(b.size(), 1u);
  EXPECT_EQ(b[0], std::byte{0});  // mode: thunk
  detail::Reader r(b);
  r.get<std::uint8_t>();
  const std::size_t thunk_len = detail::take_code_ref(r).size();
  EXPECT_EQ(b[1 + thunk_len], std::byte{0});  // has_fn: a callable object
  std::uint32_t len = 0;
  std::memcpy(&len, b.data() + 2 + thunk_len, sizeof len);
  EXPECT_EQ(len, sizeof f);
  const std::size_t args_at = (2 + thunk_len + 4 + sizeof f + 15) / 16 * 16;
  std::uint32_t count = 0;
  std::memcpy(&count, b.data() + args_at, sizeof count);
  EXPECT_EQ(count, 1u);

  const Bytes g = thunk_form(&add, 1, 2);
  EXPECT_EQ(g[0], std::byte{0});
  EXPECT_EQ(g[1 + thunk_len], std::byte{1});  // has_fn: a function pointer (thunk refs of one module are alike in length)

  const Bytes h = ffi_form(&scale, 1.0, 2);
  EXPECT_EQ(h[0], std::byte{1});  // mode: ffi
  detail::Reader hr(h);
  hr.get<std::uint8_t>();
  const std::size_t fn_len = detail::take_code_ref(hr).size();
  EXPECT_EQ(h[1 + fn_len], std::byte(detail::FfiType::f64));  // result
  EXPECT_EQ(h[2 + fn_len], std::byte{2});                     // parameter count
  EXPECT_EQ(h[3 + fn_len], std::byte(detail::FfiType::f64));
  EXPECT_EQ(h[4 + fn_len], std::byte(detail::FfiType::i32));
}

TEST(apply_record, a_function_record_is_the_same_from_the_per_thread_cache_as_written_afresh) {
  const Bytes first = thunk_form(&add, 1, 2), second = thunk_form(&add, 1, 2);  // the second from the cache
  EXPECT_EQ(first, second);
  using CT = detail::call_traits<decltype(&add), int, int>;
  constexpr detail::Thunk own = detail::thunk_of<CT::fn_type, CT::takes_ns, CT::params>::value;
  Bytes afresh;
  detail::Writer w(afresh);
  detail::put_thunk_call_head(w, detail::thunk_ref<own>(), &detail::function_code_ref(reinterpret_cast<const void*>(&add)), {});
  w.align(detail::kArgsAlign);
  detail::put_args<CT::params>(w, 1, 2);
  EXPECT_EQ(first, afresh);

  // After bytes that leave the record unaligned, the cached head is copied without its padding.
  Bytes shifted(3, std::byte{0xab});
  detail::Writer sw(shifted);
  detail::put_function_call<own>(sw, reinterpret_cast<const void*>(&add), nullptr);
  detail::put_args<CT::params>(sw, 1, 2);
  Bytes expected(3, std::byte{0xab});
  detail::Writer ew(expected);
  detail::put_thunk_call_head(ew, detail::thunk_ref<own>(), &detail::function_code_ref(reinterpret_cast<const void*>(&add)), {});
  ew.align(detail::kArgsAlign);
  detail::put_args<CT::params>(ew, 1, 2);
  EXPECT_EQ(shifted, expected);
}

TEST(apply_record, a_c_function_travels_with_its_signature_and_is_called_through_libffi) {
  const Bytes b = ffi_form(&scale, 2.5, 4);
  const detail::ApplyRecord rec = detail::read_apply_record(b);
  EXPECT_EQ(rec.mode, detail::CallMode::ffi);
  EXPECT_TRUE(rec.thunk.empty());
  EXPECT_TRUE(rec.callable.empty());
  EXPECT_EQ(detail::resolve(detail::code_ref_of(rec.fn)), reinterpret_cast<void*>(&scale));
  EXPECT_EQ(rec.ffi_result, detail::FfiType::f64);
  ASSERT_EQ(rec.ffi_params.size(), 2u);
  EXPECT_EQ(rec.ffi_param(0), detail::FfiType::f64);
  EXPECT_EQ(rec.ffi_param(1), detail::FfiType::i32);
  EXPECT_EQ(offset_in(rec.args, b) % detail::kArgsAlign, 0u);
  EngineNamespace ns;
  EXPECT_EQ(result_of<double>(run(b, ns.get())), 10.0);
  ns.get().set("k", std::int32_t(3));
  EXPECT_EQ(result_of<double>(run(ffi_form(&scale, 1.5, cadre::ref("k")), ns.get())), 4.5);
}

TEST(apply_record, a_c_function_of_a_shared_library_is_called_through_libffi) {
  double (*cosine)(double) = &::cos;
  EXPECT_FALSE(detail::function_code_ref(reinterpret_cast<const void*>(cosine)).main);
  EngineNamespace ns;
  EXPECT_EQ(result_of<double>(run(ffi_form(cosine, 0.0), ns.get())), 1.0);
}

/// Every strict prefix of a record must be refused with decode_error, whether by the reader or by
/// the thunk or ffi call reading the arguments.
void expect_every_prefix_refused(const Bytes& whole, cadre::Namespace& ns) {
  for (std::size_t n = 0; n < whole.size(); ++n) {
    const Bytes prefix(whole.begin(), whole.begin() + std::ptrdiff_t(n));
    EXPECT_THROW((void)run(prefix, ns), cadre::decode_error) << "prefix of " << n << " of " << whole.size() << " bytes";
  }
}

TEST(apply_record, a_truncated_record_is_refused_with_decode_error_at_every_length) {
  EngineNamespace ns;
  expect_every_prefix_refused(thunk_form(&add, 2, 3), ns.get());
  const auto f = [k = 7](int x, std::string s) { return x * k + int(s.size()); };
  expect_every_prefix_refused(thunk_form(f, 3, std::string("four")), ns.get());
  expect_every_prefix_refused(ffi_form(&scale, 2.5, 4), ns.get());
}

TEST(apply_record, a_garbled_record_is_refused_with_decode_error) {
  const auto garbled = [](Bytes b, std::size_t at, std::byte v) {
    b.at(at) = v;
    return b;
  };
  const auto f = [k = 7](int x) { return x * k; };
  const Bytes lambda = thunk_form(f, 3), ffi = ffi_form(&scale, 2.5, 4);
  const std::size_t thunk_len = [&] {
    detail::Reader r(lambda);
    r.get<std::uint8_t>();
    return detail::take_code_ref(r).size();
  }();
  EXPECT_THROW((void)detail::read_apply_record({}), cadre::decode_error);
  EXPECT_THROW((void)detail::read_apply_record(garbled(lambda, 0, std::byte{2})), cadre::decode_error);     // unknown mode
  EXPECT_THROW((void)detail::read_apply_record(garbled(lambda, 0, std::byte{0xff})), cadre::decode_error);  // unknown mode
  EXPECT_THROW((void)detail::read_apply_record(garbled(lambda, 2, std::byte{33})), cadre::decode_error);    // build-id of 33 bytes
  EXPECT_THROW((void)detail::read_apply_record(garbled(lambda, 2, std::byte{0xff})), cadre::decode_error);
  Bytes long_callable = lambda;  // a callable longer than the record
  const std::uint32_t huge = 0xffffffffu;
  std::memcpy(long_callable.data() + 2 + thunk_len, &huge, sizeof huge);
  EXPECT_THROW((void)detail::read_apply_record(long_callable), cadre::decode_error);
  detail::Reader fr(ffi);
  fr.get<std::uint8_t>();
  const std::size_t fn_len = detail::take_code_ref(fr).size();
  EXPECT_THROW((void)detail::read_apply_record(garbled(ffi, 2 + fn_len, std::byte{17})), cadre::decode_error);  // 17 parameters
  EngineNamespace ns;
  EXPECT_THROW((void)run(garbled(ffi, 3 + fn_len, std::byte{0x7f}), ns.get()), cadre::decode_error);  // unknown type code
  EXPECT_THROW((void)run(garbled(ffi, 1 + fn_len, std::byte{0x7f}), ns.get()), cadre::decode_error);  // unknown result type

  // Any byte of any value: the reader either parses the record or throws decode_error, never more.
  for (const Bytes* b : {&lambda, &ffi})
    for (std::size_t at = 0; at < b->size(); ++at)
      for (std::byte v : {std::byte{0}, std::byte{1}, std::byte{0x10}, std::byte{0x80}, std::byte{0xff}}) {
        const Bytes g = garbled(*b, at, v);
        try {
          const detail::ApplyRecord rec = detail::read_apply_record(g);
          EXPECT_EQ(offset_in(rec.args, g) + rec.args.size(), g.size());
          EXPECT_LE(rec.ffi_params.size(), detail::kMaxFfiParams);
        } catch (const cadre::decode_error&) {
        }
      }
}

TEST(apply_record, the_committed_fuzz_seeds_of_apply_records_still_parse) {
  const std::filesystem::path dir = std::filesystem::path(CADRE_SOURCE_DIR) / "tests/fuzz/corpus/record_fuzz";
  int seen = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const bool thunk = name.starts_with("seed-7-"), ffi = name.starts_with("seed-8-");
    if (!thunk && !ffi) continue;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 1u);
    Bytes record(bytes.size() - 1);  // without the fuzzer's selector byte
    std::memcpy(record.data(), bytes.data() + 1, record.size());
    const detail::ApplyRecord rec = detail::read_apply_record(record);
    EXPECT_EQ(rec.mode, thunk ? detail::CallMode::thunk : detail::CallMode::ffi) << name;
    EXPECT_FALSE(rec.args.empty()) << name;
    ++seen;
  }
  EXPECT_EQ(seen, 5);
}

}  // namespace
