// cadre/detail/wire/apply_record.hpp — the apply record (RecordKind::apply): what an engine is to call, written by the client, read by the engine.
//
// Offsets count from the record's start, which is 16-byte aligned. The first byte is the CallMode:
//
//   thunk: the engines run this program, or load a library that CADRE_EXPORTs the function
//     +------+-----------+---------+------------+---------+-----------+------------+---------------+
//     | u8 0 | thunk ref | u8 0|1  | fn ref     | u32 len | len bytes | zeros to   | argument list |
//     | mode |           | has_fn  | if has_fn  |         | callable  | 16-aligned | (args.hpp)    |
//     +------+-----------+---------+------------+---------+-----------+------------+---------------+
//     A function pointer: has_fn 1 and len 0. A callable object (a lambda): has_fn 0, and its bytes.
//
//   ffi: a generic engine calls a C function with numeric parameters and result through libffi
//     +------+--------+--------------+---------+--------------------+------------+---------------+
//     | u8 1 | fn ref | u8 FfiType   | u8 n    | n × u8 FfiType     | zeros to   | argument list |
//     | mode |        | of result    | ≤ 16    | of the parameters  | 16-aligned | (args.hpp)    |
//     +------+--------+--------------+---------+--------------------+------------+---------------+
//
// A ref is a code reference (code_ref.hpp): the thunk's or the function's module and offset.
#pragma once

#include <cadre/detail/wire/args.hpp>
#include <cadre/detail/wire/call.hpp>
#include <cadre/detail/wire/code_ref.hpp>
#include <cadre/detail/wire/module_ref.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cadre::detail {

/// The first byte of an apply record: how the engine makes the call.
enum class CallMode : std::uint8_t {
  thunk = 0,  ///< resolve the client's thunk and hand it the function or callable object
  ffi = 1,    ///< resolve a C function and call it through libffi
};

/// The has_fn byte of the thunk form.
inline constexpr std::uint8_t kNoFunction = 0;   // a callable object: its bytes follow
inline constexpr std::uint8_t kHasFunction = 1;  // a function pointer: its code reference follows
/// The argument list starts at this alignment, so that the typed values in it can be read in place.
inline constexpr std::size_t kArgsAlign = 16;
/// Most parameters an ffi call may have.
inline constexpr std::size_t kMaxFfiParams = 16;

// ---- ffi type codes ---------------------------------------------------------------------------

enum class FfiType : std::uint8_t { v = 0, i8, u8, i16, u16, i32, u32, i64, u64, f32, f64, b };

template <class T>
constexpr FfiType ffi_code() {
  using U = std::decay_t<T>;
  if constexpr (std::is_void_v<U>) return FfiType::v;
  else if constexpr (std::is_same_v<U, bool>) return FfiType::b;
  else if constexpr (std::is_floating_point_v<U>) return sizeof(U) == 4 ? FfiType::f32 : FfiType::f64;
  else if constexpr (std::is_signed_v<U>)
    return sizeof(U) == 1 ? FfiType::i8 : sizeof(U) == 2 ? FfiType::i16 : sizeof(U) == 4 ? FfiType::i32 : FfiType::i64;
  else return sizeof(U) == 1 ? FfiType::u8 : sizeof(U) == 2 ? FfiType::u16 : sizeof(U) == 4 ? FfiType::u32 : FfiType::u64;
}

template <class T>
inline constexpr bool ffi_able_v = std::is_void_v<T> || (std::is_arithmetic_v<T> && !std::is_same_v<T, long double>);

/// Whether a function pointer type can be called through libffi: numbers in, a number or nothing out.
template <class F>
struct ffi_signature {
  static constexpr bool value = false;
};
template <class R, class... A>
struct ffi_signature<R (*)(A...)> {
  static constexpr bool value = ffi_able_v<R> && (ffi_able_v<A> && ...);
};
template <class R, class... A>
struct ffi_signature<R (*)(A...) noexcept> : ffi_signature<R (*)(A...)> {};

// ---- writing (client) -------------------------------------------------------------------------

/// The CodeRef of one thunk, located once.
template <Thunk th>
const CodeRef& thunk_ref() {
  static const CodeRef r = locate(reinterpret_cast<const void*>(th), "cadre's call thunk");
  return r;
}

/// The CodeRef of a function pointer, located once per thread and pointer (dladdr is slow).
inline const CodeRef& function_code_ref(const void* p) {
  thread_local std::unordered_map<const void*, CodeRef> cache;
  auto it = cache.find(p);
  if (it == cache.end()) it = cache.emplace(p, locate(p, describe_function(p))).first;
  return it->second;
}

/// Writes a thunk-form record up to its padding: the thunk, the function (nullptr: none) and the
/// callable object's bytes.
inline void put_thunk_call_head(Writer& w, const CodeRef& thunk, const CodeRef* fn, std::span<const std::byte> callable) {
  w.put(CallMode::thunk);
  put_code_ref(w, thunk);
  w.put(fn ? kHasFunction : kNoFunction);
  if (fn) put_code_ref(w, *fn);
  w.put(std::uint32_t(callable.size()));
  w.bytes(callable.data(), callable.size());
}

/// Writes a thunk-form record for the function pointer p up to its argument list: thunk `own`, or
/// `exported` (CADRE_EXPORT) when that is not null. Append the arguments with put_args.
template <Thunk own>
void put_function_call(Writer& w, const void* p, Thunk exported) {
  // The bytes depend only on (pointer, thunk): the last ones are kept per thread, and a loop of
  // applies of one function appends them at once. Writing them field by field was a sixth of the
  // client's instructions per load-balanced apply_async (callgrind of bench/lb_bench.cpp). They are
  // kept padded to 16 bytes, as they are written at the start of a record.
  struct Last {
    const void* p = nullptr;
    Thunk exported = nullptr;
    std::vector<std::byte> bytes;
    std::size_t unpadded = 0;
  };
  thread_local Last last;
  if (last.p != p || last.exported != exported || last.bytes.empty()) {
    std::vector<std::byte> bytes;
    Writer cw(bytes);
    put_thunk_call_head(cw, exported ? locate(reinterpret_cast<const void*>(exported), "exported thunk") : thunk_ref<own>(),
                        &function_code_ref(p), {});
    const std::size_t unpadded = bytes.size();
    cw.align(kArgsAlign);
    last = {p, exported, std::move(bytes), unpadded};
  }
  if (w.size() % kArgsAlign == 0) {
    w.bytes(last.bytes.data(), last.bytes.size());
    return;
  }
  w.bytes(last.bytes.data(), last.unpadded);
  w.align(kArgsAlign);
}

/// Writes a thunk-form record for a callable object up to its argument list: thunk `own` and the
/// object's bytes, which the engine copies back into an object. Append the arguments with put_args.
template <Thunk own, class Fn>
void put_object_call(Writer& w, const Fn& f) {
  static_assert(std::is_trivially_copyable_v<Fn>,
                "cadre: a lambda sent to engines may only capture trivially copyable values (numbers, "
                "plain structs), which are shipped by value; pass other values as arguments to apply()");
  put_thunk_call_head(w, thunk_ref<own>(), nullptr, std::as_bytes(std::span(&f, 1)));
  w.align(kArgsAlign);
}

/// Writes an ffi-form record up to its argument list: the function and its signature as type codes.
inline void put_ffi_call_head(Writer& w, const CodeRef& fn, FfiType result, std::span<const FfiType> params) {
  w.put(CallMode::ffi);
  put_code_ref(w, fn);
  w.put(result);
  w.put(std::uint8_t(params.size()));
  for (FfiType t : params) w.put(t);
  w.align(kArgsAlign);
}

/// Writes a whole ffi-form record: calling the C function at `fn`, of result R and parameters Params
/// (a std::tuple), with args.
template <class R, class Params>
struct ffi_call_writer;
template <class R, class... A>
struct ffi_call_writer<R, std::tuple<A...>> {
  template <class... Args>
  static void put(Writer& w, const CodeRef& fn, Args&&... args) {
    static constexpr FfiType params[] = {ffi_code<A>()..., FfiType::v};  // one more: never an empty array
    put_ffi_call_head(w, fn, ffi_code<R>(), std::span(params, sizeof...(A)));
    put_args<std::tuple<std::decay_t<A>...>>(w, std::forward<Args>(args)...);
  }
};

// ---- reading (engine) -------------------------------------------------------------------------

/// An apply record, parsed and bounds-checked; every span points into the record.
struct ApplyRecord {
  CallMode mode = CallMode::thunk;
  std::span<const std::byte> thunk;     ///< thunk form: the thunk's code reference
  std::span<const std::byte> fn;        ///< the function's code reference; empty for a callable object
  std::span<const std::byte> callable;  ///< thunk form: the callable object's bytes
  FfiType ffi_result = FfiType::v;      ///< ffi form: the result's type code
  std::span<const std::byte> ffi_params;  ///< ffi form: one type code per parameter, at most kMaxFfiParams
  std::span<const std::byte> args;      ///< the argument list (args.hpp), 16-byte aligned

  [[nodiscard]] FfiType ffi_param(std::size_t i) const { return FfiType(std::to_integer<std::uint8_t>(ffi_params[i])); }
};

/// Parses an apply record. Throws decode_error when it is truncated or malformed; the code
/// references are checked for form only (resolving them is the engine's business), the type codes
/// not at all (the ffi call checks them).
[[nodiscard]] inline ApplyRecord read_apply_record(std::span<const std::byte> data) {
  Reader r(data);
  ApplyRecord rec;
  const auto mode = r.get<std::uint8_t>();
  switch (CallMode(mode)) {
    case CallMode::thunk:
      rec.mode = CallMode::thunk;
      rec.thunk = take_code_ref(r);
      if (r.get<std::uint8_t>() != kNoFunction) rec.fn = take_code_ref(r);
      rec.callable = r.take(r.get<std::uint32_t>());
      break;
    case CallMode::ffi: {
      rec.mode = CallMode::ffi;
      rec.fn = take_code_ref(r);
      rec.ffi_result = r.get<FfiType>();
      const auto n = r.get<std::uint8_t>();
      if (n > kMaxFfiParams)
        throw decode_error("ffi call with " + std::to_string(n) + " arguments (at most " + std::to_string(kMaxFfiParams) + ")");
      rec.ffi_params = r.take(n);
      break;
    }
    default: throw decode_error("unknown call mode " + std::to_string(mode));
  }
  r.align(kArgsAlign);
  rec.args = data.subspan(r.pos());
  return rec;
}

}  // namespace cadre::detail
