// cadre/detail/wire/ffi_call.hpp — calling a C function with an arithmetic signature through libffi.
//
// Generic `cadre-engine`s do not contain the client's thunks, but they can still call `::getpid`,
// `::cos` or any `extern "C"` function of a shared library whose parameters and result are numbers:
// the client sends the function's CodeRef and its signature as type codes, and libffi makes the call.
#pragma once

#include <cadre/function_ref.hpp>
#include <cadre/this_engine.hpp>

#include <ffi.h>

namespace cadre::detail {

union FfiValue {
  std::int8_t i8;
  std::uint8_t u8;
  std::int16_t i16;
  std::uint16_t u16;
  std::int32_t i32;
  std::uint32_t u32;
  std::int64_t i64;
  std::uint64_t u64;
  float f32;
  double f64;
  bool b;
  ffi_arg widened;  // libffi writes small integer results widened to ffi_arg
};

template <class F>
void with_ffi_type(FfiType t, F&& f) {
  switch (t) {
    case FfiType::v: return f(std::type_identity<void>{});
    case FfiType::i8: return f(std::type_identity<std::int8_t>{});
    case FfiType::u8: return f(std::type_identity<std::uint8_t>{});
    case FfiType::i16: return f(std::type_identity<std::int16_t>{});
    case FfiType::u16: return f(std::type_identity<std::uint16_t>{});
    case FfiType::i32: return f(std::type_identity<std::int32_t>{});
    case FfiType::u32: return f(std::type_identity<std::uint32_t>{});
    case FfiType::i64: return f(std::type_identity<std::int64_t>{});
    case FfiType::u64: return f(std::type_identity<std::uint64_t>{});
    case FfiType::f32: return f(std::type_identity<float>{});
    case FfiType::f64: return f(std::type_identity<double>{});
    case FfiType::b: return f(std::type_identity<bool>{});
  }
  throw decode_error("unknown ffi type code " + std::to_string(unsigned(t)));
}

inline ffi_type* ffi_type_of(FfiType t) {
  switch (t) {
    case FfiType::v: return &ffi_type_void;
    case FfiType::i8: return &ffi_type_sint8;
    case FfiType::u8: case FfiType::b: return &ffi_type_uint8;
    case FfiType::i16: return &ffi_type_sint16;
    case FfiType::u16: return &ffi_type_uint16;
    case FfiType::i32: return &ffi_type_sint32;
    case FfiType::u32: return &ffi_type_uint32;
    case FfiType::i64: return &ffi_type_sint64;
    case FfiType::u64: return &ffi_type_uint64;
    case FfiType::f32: return &ffi_type_float;
    case FfiType::f64: return &ffi_type_double;
  }
  throw decode_error("unknown ffi type code");
}

/// Client side: writes the ffi part of an apply record (after the mode byte) for a function with
/// result R and parameters Params (a std::tuple).
template <class R, class Params>
struct ffi_writer;
template <class R, class... A>
struct ffi_writer<R, std::tuple<A...>> {
  template <class... Args>
  static void put(Writer& w, const CodeRef& where, Args&&... args) {
    put_code_ref(w, where);
    w.put(ffi_code<R>());
    w.put(std::uint8_t(sizeof...(A)));
    (w.put(ffi_code<A>()), ...);
    w.align(16);
    put_args<std::tuple<std::decay_t<A>...>>(w, std::forward<Args>(args)...);
  }
};

/// Engine side: reads the rest of an ffi apply record from r, calls, appends the typed result to out.
inline void call_through_ffi(Reader& r, std::span<const std::byte> data, std::vector<std::byte>& out) {
  const CodeRef where = get_code_ref(r);
  const auto ret = FfiType(r.get<std::uint8_t>());
  const auto n = r.get<std::uint8_t>();
  if (n > 16) throw decode_error("ffi call with " + std::to_string(n) + " arguments (at most 16)");
  FfiType codes[16];
  for (unsigned i = 0; i < n; ++i) codes[i] = FfiType(r.get<std::uint8_t>());
  r.align(16);
  void* fn = resolve(where);
  const auto args = data.subspan(r.pos());
  Reader ar(args);
  if (ar.get<std::uint32_t>() != n) throw decode_error("ffi call record has the wrong number of arguments");
  FfiValue values[16]{};
  void* ptrs[16];
  ffi_type* types[16];
  Namespace* ns = engine_context().ns;
  for (unsigned i = 0; i < n; ++i) {
    with_ffi_type(codes[i], [&]<class T>(std::type_identity<T>) {
      if constexpr (std::is_void_v<T>) throw decode_error("void parameter");
      else {
        T v = get_arg<T>(ar, args, *ns, i);
        std::memcpy(&values[i], &v, sizeof v);
      }
    });
    ptrs[i] = &values[i];
    types[i] = ffi_type_of(codes[i]);
  }
  ffi_cif cif;
  if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, n, ffi_type_of(ret), types) != FFI_OK)
    throw function_error("libffi cannot prepare a call to " + describe_function(fn));
  FfiValue result{};
  ::ffi_call(&cif, FFI_FN(fn), &result, ptrs);
  with_ffi_type(ret, [&]<class T>(std::type_identity<T>) {
    if constexpr (!std::is_void_v<T>) {
      T v;
      if constexpr (std::is_integral_v<T> && sizeof(T) < sizeof(ffi_arg)) v = T(result.widened);
      else std::memcpy(&v, &result, sizeof v);
      encode_typed<T>(v, out);
    }
  });
}

}  // namespace cadre::detail
