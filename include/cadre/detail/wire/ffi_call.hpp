// cadre/detail/wire/ffi_call.hpp — calling a C function with an arithmetic signature through libffi.
//
// Generic `cadre-engine`s do not contain the client's thunks, but they can still call `::getpid`,
// `::cos` or any `extern "C"` function of a shared library whose parameters and result are numbers:
// the client sends the function's CodeRef and its signature as type codes (the ffi form of the apply
// record, apply_record.hpp), and libffi makes the call.
#pragma once

#include <cadre/detail/base/interrupt_gate.hpp>
#include <cadre/detail/wire/apply_record.hpp>
#include <cadre/detail/wire/args.hpp>
#include <cadre/detail/wire/code_ref.hpp>
#include <cadre/detail/wire/module_ref.hpp>
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

/// Engine side: makes the call an ffi-form apply record asks for, appends the typed result to out.
inline void call_through_ffi(const ApplyRecord& rec, std::vector<std::byte>& out) {
  const std::size_t n = rec.ffi_params.size();
  void* fn = resolve(code_ref_of(rec.fn));
  const auto args = rec.args;
  Reader ar(args);
  if (ar.get<std::uint32_t>() != n) throw decode_error("ffi call record has the wrong number of arguments");
  FfiValue values[kMaxFfiParams]{};
  void* ptrs[kMaxFfiParams];
  ffi_type* types[kMaxFfiParams];
  Namespace* ns = engine_context().ns;
  for (std::size_t i = 0; i < n; ++i) {
    with_ffi_type(rec.ffi_param(i), [&]<class T>(std::type_identity<T>) {
      if constexpr (std::is_void_v<T>) throw decode_error("void parameter");
      else {
        T v = get_arg<T>(ar, args, *ns, i);
        std::memcpy(&values[i], &v, sizeof v);
      }
    });
    ptrs[i] = &values[i];
    types[i] = ffi_type_of(rec.ffi_param(i));
  }
  ffi_cif cif;
  if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, unsigned(n), ffi_type_of(rec.ffi_result), types) != FFI_OK)
    throw function_error("libffi cannot prepare a call to " + describe_function(fn));
  FfiValue result{};
  {
    const UserCall armed;
    ::ffi_call(&cif, FFI_FN(fn), &result, ptrs);
  }
  with_ffi_type(rec.ffi_result, [&]<class T>(std::type_identity<T>) {
    if constexpr (!std::is_void_v<T>) {
      T v;
      if constexpr (std::is_integral_v<T> && sizeof(T) < sizeof(ffi_arg)) v = T(result.widened);
      else std::memcpy(&v, &result, sizeof v);
      encode_typed<T>(v, out);
    }
  });
}

}  // namespace cadre::detail
