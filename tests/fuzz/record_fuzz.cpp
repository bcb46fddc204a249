// tests/fuzz/record_fuzz.cpp — libFuzzer target: the decoders that read records out of shared memory.
//
// A record's bytes are written by another process, so every decoder must reject anything malformed
// with a cadre::error (decode_error, type_error, name_error, ...) and never crash, hit UB or read out
// of bounds. Input: [selector byte][record bytes]; the selector picks the decoder:
//
//   0  parse_typed + decode_typed            (typed-value envelope; arguments, results, pushes)
//   1  take_output_trailer + task_value      (a completion with captured output, client side)
//   2  typed_from_head + task_value          (a split completion: type head inline, payload in a block)
//   3  get_strings + task_error              (an error completion, for each status)
//   4  get_code_ref, repeatedly              (code references of apply records)
//   5  pull / erase record                   (the engine's Reader over the name)
//   6  push record (inline)                  (name, align, Namespace::store_bytes, then get/view)
//   7  apply record, thunk form              (read_apply_record, then real thunks decode the args)
//   8  apply record, ffi form                (read_apply_record, then as call_through_ffi minus resolve() and ffi_call)
//   9  scatter_view record                   (name, block/at/count/elem, typed_from_head)
//  10  gather                                (gather_into / gather_eigen over 1-4 completions)
//
// What runs is the library's own code; only the steps that need a live segment or would execute
// code (resolve() of a CodeRef, ffi_call, Segment::block) are left out. The record bytes are copied
// to a 16-byte aligned buffer, as records in the segment are.
#include <cadre/async_result.hpp>
#include <cadre/codec.hpp>
#include <cadre/eigen.hpp>
#include <cadre/detail/client/data_plane.hpp>
#include <cadre/detail/wire/apply_record.hpp>
#include <cadre/detail/wire/call.hpp>
#include <cadre/detail/wire/code_ref.hpp>
#include <cadre/detail/wire/ffi_call.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/errors.hpp>
#include <cadre/ref.hpp>
#include <cadre/namespace.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <typeinfo>
#include <vector>

namespace {

namespace detail = cadre::detail;
using Bytes = std::vector<std::byte>;
using Tuple = std::tuple<int, std::string, std::vector<int>>;

// ---- harmless functions whose thunks decode fuzzed arguments ------------------------------------

double fn_values(std::vector<double> a, std::string s, std::map<std::string, int> m) {
  return double(a.size() + s.size() + m.size());
}
std::vector<std::string> fn_ns(cadre::Namespace& ns, std::optional<std::vector<int>> o, Eigen::MatrixXd x) {
  return {std::to_string(ns.names().size()), std::to_string(o ? o->size() : 0), std::to_string(x.size())};
}
void fn_void(Tuple, bool, std::vector<bool>) {}

struct Callable {  // a trivially copyable callable object: its bytes travel in the record
  int k;
  int operator()(int x, std::string s) const { return k ^ x ^ int(s.size()); }
};

template <auto F>
detail::Thunk thunk_for() {
  using Fn = decltype(F);
  using traits = detail::call_traits<Fn>;
  return detail::thunk_of<Fn, traits::takes_ns, typename traits::params>::value;
}

/// A namespace (no segment: values live in engine memory) with a few values for name references.
cadre::Namespace& fuzz_namespace() {
  static cadre::Namespace* ns = [] {
    auto* n = new cadre::Namespace();
    n->set("a", std::vector<double>{1, 2, 3});
    n->set("s", std::string("text"));
    n->set("m", std::map<std::string, int>{{"k", 1}});
    n->set("i", 42);
    n->set("x", Eigen::MatrixXd::Identity(2, 2).eval());
    return n;
  }();
  return *ns;
}

/// Each of these throws at the first type mismatch; run them separately so all get a chance.
template <class F>
void tolerate(F&& f) {
  try {
    f();
  } catch (const cadre::error&) {
  }
}

void typed_envelope(std::span<const std::byte> in) {
  const detail::TypedView v = detail::parse_typed(in);
  if (v.type.size() > 4096 || v.payload.data() < in.data() || v.payload.data() + v.payload.size() > in.data() + in.size())
    std::abort();
  tolerate([&] { (void)detail::decode_typed<std::vector<double>>(v, "fuzz"); });
  tolerate([&] { (void)detail::decode_typed<std::string>(v, "fuzz"); });
  tolerate([&] { (void)detail::decode_typed<std::vector<std::string>>(v, "fuzz"); });
  tolerate([&] { (void)detail::decode_typed<Tuple>(v, "fuzz"); });
  tolerate([&] { (void)detail::decode_typed<Eigen::MatrixXd>(v, "fuzz"); });
  tolerate([&] { (void)detail::decode_typed<int>(v, "fuzz"); });
  tolerate([&] { (void)cadre::view<std::vector<double>>(v.payload); });
}

/// A finished task as the client holds it after draining a completion.
void completion(detail::TaskState& t, std::span<const std::byte> bytes, detail::Status status) {
  t.engine = 1;
  t.status = status;
  t.bytes = bytes;
}

void output_trailer(std::span<const std::byte> in) {
  std::string so, se;
  const auto body = detail::take_output_trailer(in, so, se);
  if (body.size() + so.size() + se.size() + 16 != in.size()) std::abort();
  detail::TaskState t;
  completion(t, body, detail::Status::ok);
  tolerate([&] { (void)detail::task_value<std::vector<double>>(t, "fuzz"); });
  tolerate([&] { (void)detail::task_value<std::string>(t, "fuzz"); });
  tolerate([&] { (void)detail::task_value<std::vector<std::string>>(t, "fuzz"); });
}

void split_completion(std::span<const std::byte> in) {
  if (in.size() < 1) return;
  const std::size_t head_len = std::min<std::size_t>(std::size_t(in[0]), in.size() - 1);
  detail::TaskState t;
  completion(t, in.subspan(1 + head_len), detail::Status::ok);
  const auto head = in.subspan(1, head_len);
  t.extra().type_head.assign(head.begin(), head.end());
  (void)detail::typed_from_head(t.type_head(), t.bytes);
  tolerate([&] { (void)detail::task_value<std::vector<double>>(t, "fuzz"); });
  tolerate([&] { (void)detail::task_value<Tuple>(t, "fuzz"); });
  tolerate([&] { (void)detail::task_value<Eigen::MatrixXd>(t, "fuzz"); });
}

void error_record(std::span<const std::byte> in) {
  (void)detail::get_strings(in);
  for (std::uint32_t s = 0; s <= 9; ++s) {
    detail::TaskState t;
    completion(t, in, detail::Status(s));
    if (auto e = detail::task_error(t)) {
      try {
        std::rethrow_exception(e);
      } catch (const cadre::error& x) {
        (void)x.what();
      }
    }
  }
}

void code_refs(std::span<const std::byte> in) {
  detail::Reader r(in);
  while (r.left()) {
    const detail::CodeRef c = detail::get_code_ref(r);
    if (c.id.len > c.id.bytes.size() || c.path.size() > 4096) std::abort();
  }
}

void pull_or_erase(std::span<const std::byte> in) {
  detail::Reader r(in);
  const auto name = r.str(4096);
  auto& ns = fuzz_namespace();
  (void)cadre::detail::NamespaceAccess::locate(ns, name);  // name_error for anything but the names set above
}

void push_inline(std::span<const std::byte> in) {
  detail::Reader r(in);
  const auto name = std::string(r.str(4096));
  r.align(16);
  cadre::Namespace ns;
  cadre::detail::NamespaceAccess::store_bytes(ns, name, in.subspan(r.pos()));
  const auto where = cadre::detail::NamespaceAccess::locate(ns, name);
  (void)where;
  (void)ns.type_of(name);
  tolerate([&] { (void)ns.get<std::vector<double>>(name); });
  tolerate([&] { (void)ns.view<std::vector<double>>(name); });
  tolerate([&] { (void)ns.get<std::map<std::string, int>>(name); });
  tolerate([&] { (void)ns.view<Tuple>(name); });
  tolerate([&] { (void)ns.view<Eigen::MatrixXd>(name); });
  tolerate([&] { (void)ns.get<std::optional<std::vector<int>>>(name); });
  ns.erase(name);
}

/// The engine's run_apply for the thunk form, with resolve() replaced by a choice among known thunks.
void apply_thunk_form(std::span<const std::byte> in) {
  const detail::ApplyRecord rec = detail::read_apply_record(in);
  if (rec.mode != detail::CallMode::thunk) throw cadre::decode_error("not the thunk form");
  const detail::CodeRef thunk_ref = detail::code_ref_of(rec.thunk);
  if (!rec.fn.empty()) (void)detail::code_ref_of(rec.fn);
  Bytes result;
  detail::CallFrame frame{nullptr, rec.callable, rec.args, &fuzz_namespace(), &result};
  switch (thunk_ref.offset % 4) {
    case 0: frame.fn = reinterpret_cast<void*>(&fn_values); thunk_for<&fn_values>()(frame); break;
    case 1: frame.fn = reinterpret_cast<void*>(&fn_ns); thunk_for<&fn_ns>()(frame); break;
    case 2: frame.fn = reinterpret_cast<void*>(&fn_void); thunk_for<&fn_void>()(frame); break;
    case 3: detail::thunk_of<Callable, false, std::tuple<int, std::string>>::value(frame); break;
  }
  if (!result.empty()) (void)detail::parse_typed(result);  // what the thunk wrote must parse
}

/// call_through_ffi up to the call: the record, then each argument through get_arg<T>.
void apply_ffi(std::span<const std::byte> in) {
  const detail::ApplyRecord rec = detail::read_apply_record(in);
  if (rec.mode != detail::CallMode::ffi) throw cadre::decode_error("not the ffi form");
  (void)detail::code_ref_of(rec.fn);
  const std::size_t n = rec.ffi_params.size();
  if (n > detail::kMaxFfiParams) std::abort();
  const auto args = rec.args;
  detail::Reader ar(args);
  if (ar.get<std::uint32_t>() != n) throw cadre::decode_error("wrong number of arguments");
  detail::FfiValue values[detail::kMaxFfiParams]{};
  ffi_type* types[detail::kMaxFfiParams];
  for (std::size_t i = 0; i < n; ++i) {
    detail::with_ffi_type(rec.ffi_param(i), [&]<class T>(std::type_identity<T>) {
      if constexpr (std::is_void_v<T>) throw cadre::decode_error("void parameter");
      else {
        T v = detail::get_arg<T>(ar, args, fuzz_namespace(), i);
        std::memcpy(&values[i], &v, sizeof v);
      }
    });
    types[i] = detail::ffi_type_of(rec.ffi_param(i));
  }
  (void)detail::ffi_type_of(rec.ffi_result);
  (void)types;
}

void scatter_view(std::span<const std::byte> in) {
  detail::Reader r(in);
  const auto name = std::string(r.str(4096));
  (void)r.get<std::uint64_t>(), (void)r.get<std::uint64_t>(), (void)r.get<std::uint64_t>(), (void)r.get<std::uint64_t>();
  const detail::TypedView type = detail::typed_from_head(in.subspan(r.pos()), {});
  if (type.type.size() > 4096) std::abort();
}

/// [task count][u16 length, bytes]...: each part is one engine's completion; then gather them.
void gather(std::span<const std::byte> in) {
  detail::Reader r(in);
  const unsigned n = 1 + r.get<std::uint8_t>() % 4;
  std::vector<detail::Task> tasks;
  for (unsigned i = 0; i < n; ++i) {
    auto t = std::make_shared<detail::TaskState>();
    const auto part = r.take(r.get<std::uint16_t>());
    t->engine = i;
    t->keep(part);  // as ClientCore::drain copies inline results
    t->done.store(true);
    tasks.push_back(std::move(t));
  }
  tolerate([&] {
    std::vector<double> out;
    detail::gather_into(tasks, "x", out);
  });
  tolerate([&] {
    std::vector<std::string> out;
    detail::gather_into(tasks, "x", out);
  });
  tolerate([&] { (void)detail::gather_eigen<Eigen::MatrixXd>(tasks, "x"); });
  tolerate([&] { (void)detail::gather_eigen<Eigen::RowVectorXf>(tasks, "x"); });
}

void run(std::uint8_t selector, std::span<const std::byte> in) {
  switch (selector % 11) {
    case 0: return typed_envelope(in);
    case 1: return output_trailer(in);
    case 2: return split_completion(in);
    case 3: return error_record(in);
    case 4: return code_refs(in);
    case 5: return pull_or_erase(in);
    case 6: return push_inline(in);
    case 7: return apply_thunk_form(in);
    case 8: return apply_ffi(in);
    case 9: return scatter_view(in);
    case 10: return gather(in);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > (1u << 20)) return 0;
  Bytes record(reinterpret_cast<const std::byte*>(data) + 1, reinterpret_cast<const std::byte*>(data) + size);
  try {
    run(data[0], record);
  } catch (const cadre::error&) {
    // decode_error, type_error, name_error, function_error: the expected ways to reject a record
  } catch (const std::exception& e) {
    std::fprintf(stderr, "record_fuzz: selector %u threw %s: %s\n", unsigned(data[0] % 11), typeid(e).name(), e.what());
    std::abort();
  }
  return 0;
}

#ifdef CADRE_FUZZ_SEED_MAIN
// Seed generator (tools/fuzz --seed): valid records of each kind, written to argv[1]/<n>.
#include <fstream>
namespace {
int seeds_written = 0;
void seed(const char* dir, std::uint8_t selector, const Bytes& body) {
  std::ofstream f(std::string(dir) + "/seed-" + std::to_string(selector) + "-" + std::to_string(seeds_written++),
                  std::ios::binary);
  f.put(char(selector));
  f.write(reinterpret_cast<const char*>(body.data()), std::streamsize(body.size()));
}
template <class T>
Bytes typed(const T& v) {
  Bytes b;
  detail::encode_typed(v, b);
  return b;
}
detail::CodeRef some_ref(std::uint64_t offset, std::string path = {}) {
  detail::CodeRef c;
  c.id.len = 20;
  for (int i = 0; i < 20; ++i) c.id.bytes[std::size_t(i)] = std::uint8_t(i * 7);
  c.offset = offset;
  c.path = std::move(path);
  return c;
}
}  // namespace
int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const char* d = argv[1];
  seed(d, 0, typed(std::vector<double>{1, 2, 3}));
  seed(d, 0, typed(Tuple{1, "one", {1}}));
  seed(d, 0, typed(Eigen::MatrixXd::Ones(2, 2).eval()));
  {  // 1: a result followed by an output trailer
    Bytes b = typed(std::string("result"));
    detail::put_output_trailer(b, "printed\n", "warned\n");
    seed(d, 1, b);
  }
  {  // 2: [head length][type head][payload]
    Bytes head;
    detail::put_type_head(head, cadre::type_hash<std::vector<double>>(), cadre::type_name<std::vector<double>>());
    Bytes b{std::byte(head.size())};
    b.insert(b.end(), head.begin(), head.end());
    cadre::encode(std::vector<double>{4, 5}, b);
    seed(d, 2, b);
  }
  {  // 3: error strings
    Bytes b;
    detail::Writer w(b);
    detail::put_strings(w, {"std::runtime_error", "boom", "context"});
    seed(d, 3, b);
  }
  {  // 4: two code refs
    Bytes b;
    detail::Writer w(b);
    detail::put_code_ref(w, some_ref(0x1234));
    detail::put_code_ref(w, some_ref(0x42, "/usr/lib/libm.so.6"));
    seed(d, 4, b);
  }
  {  // 5: pull "a"
    Bytes b;
    detail::Writer w(b);
    w.str("a");
    seed(d, 5, b);
  }
  {  // 6: push "v" = vector<double>
    Bytes b;
    detail::Writer w(b);
    w.str("v");
    w.align(16);
    detail::encode_typed(std::vector<double>{1, 2, 3}, b);
    seed(d, 6, b);
  }
  // 7: apply records for each thunk (offset % 4 picks it), arguments by value and by name.
  for (std::uint64_t which = 0; which < 4; ++which) {
    Bytes b;
    detail::Writer w(b);
    const detail::CodeRef fn = some_ref(0x99);
    const Callable c{5};
    if (which != 3) detail::put_thunk_call_head(w, some_ref(which), &fn, {});
    else detail::put_thunk_call_head(w, some_ref(which), nullptr, std::as_bytes(std::span(&c, 1)));
    w.align(detail::kArgsAlign);
    switch (which) {
      case 0:
        detail::put_args<std::tuple<std::vector<double>, std::string, std::map<std::string, int>>>(
            w, cadre::ref("a"), std::string("s"), std::map<std::string, int>{{"x", 1}});
        break;
      case 1:
        detail::put_args<std::tuple<std::optional<std::vector<int>>, Eigen::MatrixXd>>(
            w, std::optional<std::vector<int>>(std::vector<int>{1}), cadre::ref("x"));
        break;
      case 2:
        detail::put_args<std::tuple<Tuple, bool, std::vector<bool>>>(w, Tuple{1, "a", {2}}, true,
                                                                      std::vector<bool>{false, true});
        break;
      case 3: detail::put_args<std::tuple<int, std::string>>(w, 3, std::string("three")); break;
    }
    seed(d, 7, b);
  }
  {  // 8: an ffi call double(double, i32)
    Bytes b;
    detail::Writer w(b);
    detail::ffi_call_writer<double, std::tuple<double, int>>::put(w, some_ref(0x10), 2.5, 7);
    seed(d, 8, b);
  }
  {  // 9: scatter_view "part" of a block
    Bytes b;
    detail::Writer w(b);
    w.str("part");
    for (std::uint64_t v : {std::uint64_t(1) << 20, std::uint64_t(0), std::uint64_t(16), std::uint64_t(8)}) w.put(v);
    detail::put_type_head(b, cadre::type_hash<std::vector<double>>(), cadre::type_name<std::vector<double>>());
    seed(d, 9, b);
  }
  {  // 10: gather of three engines' parts: two vectors and a scalar; and of two matrices
    auto part = [](Bytes& b, const Bytes& v) {
      const auto n = std::uint16_t(v.size());
      b.insert(b.end(), reinterpret_cast<const std::byte*>(&n), reinterpret_cast<const std::byte*>(&n) + 2);
      b.insert(b.end(), v.begin(), v.end());
    };
    Bytes b{std::byte(2)};
    part(b, typed(std::vector<double>{1, 2}));
    part(b, typed(std::vector<double>{3}));
    part(b, typed(4.0));
    seed(d, 10, b);
    Bytes m{std::byte(1)};
    part(m, typed(Eigen::MatrixXd::Ones(2, 3).eval()));
    part(m, typed(Eigen::MatrixXd::Zero(1, 3).eval()));
    seed(d, 10, m);
    Bytes z{std::byte(1)};  // rows without columns next to a 1x3 block: a type_error, not a bad copy
    part(z, typed(Eigen::MatrixXd::Ones(1, 3).eval()));
    part(z, typed(Eigen::MatrixXd(1000, 0)));
    seed(d, 10, z);
  }
  return 0;
}
#endif
