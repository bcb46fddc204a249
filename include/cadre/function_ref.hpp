// cadre/function_ref.hpp — how a callable travels to an engine: code references, thunks and arguments.
//
// A call is sent as (thunk, function, callable bytes, arguments). The thunk is a template instance
// compiled into the client: it decodes the arguments, calls the function and encodes the result.
// Both thunk and function travel as CodeRefs (module build-id + offset), so any function works when
// the engines run the client's own executable. Engines that run another program (the generic
// `cadre-engine`) call C functions with arithmetic signatures through libffi, and C++ functions that
// a shared library exports with CADRE_EXPORT.
#pragma once

#include <cadre/codec.hpp>
#include <cadre/detail/wire/module_ref.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/errors.hpp>
#include <cadre/namespace.hpp>

#include <cxxabi.h>

#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

namespace cadre {

/// Names a value in each engine's namespace, to pass as an argument: `view.apply(f, cadre::ref("a"))`
/// calls f with each engine's own "a".
struct ref {
  std::string name;
  explicit ref(std::string n) : name(std::move(n)) {}
};

namespace detail {

/// What an engine hands a thunk.
struct CallFrame {
  void* fn;                                // resolved function pointer, or nullptr for callable objects
  std::span<const std::byte> callable;     // bytes of a trivially copyable callable object
  std::span<const std::byte> args;         // encoded arguments
  Namespace* ns;                           // the engine's namespace
  std::vector<std::byte>* result;          // the thunk appends the result's typed value (nothing for void)
};
using Thunk = void (*)(CallFrame&);

// ---- signatures ------------------------------------------------------------------------------

template <class T, class = void>
struct signature {
  static constexpr bool known = false;
};
template <class R, class... A>
struct signature<R (*)(A...)> {
  static constexpr bool known = true;
  using result = R;
  using params = std::tuple<A...>;
};
template <class R, class... A>
struct signature<R (*)(A...) noexcept> : signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...) const> : signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...) const noexcept> : signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...)> : signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...) noexcept> : signature<R (*)(A...)> {};
template <class F>
struct signature<F, std::void_t<decltype(&F::operator())>> : signature<decltype(&F::operator())> {};

template <class T>
inline constexpr bool is_ref_v = std::is_same_v<std::decay_t<T>, ref>;

template <class Tuple>
struct first_is_namespace : std::false_type {};
template <class A0, class... A>
struct first_is_namespace<std::tuple<A0, A...>> : std::is_same<A0, Namespace&> {};

template <class Tuple>
struct drop_first;
template <class A0, class... A>
struct drop_first<std::tuple<A0, A...>> {
  using type = std::tuple<A...>;
};

template <class Tuple>
struct decay_all;
template <class... A>
struct decay_all<std::tuple<A...>> {
  using type = std::tuple<std::decay_t<A>...>;
};

template <class Fn, bool Known, class... Args>
struct takes_namespace
    : std::bool_constant<std::is_invocable_v<Fn&, Namespace&, Args...> && !std::is_invocable_v<Fn&, Args...>> {};
template <class Fn, class... Args>
struct takes_namespace<Fn, true, Args...> : first_is_namespace<typename signature<Fn>::params> {};

template <class Fn, bool Known, bool TakesNs, class... Args>
struct params_of {
  using type = std::tuple<std::decay_t<Args>...>;
};
template <class Fn, class... Args>
struct params_of<Fn, true, true, Args...> {
  using type = typename decay_all<typename drop_first<typename signature<Fn>::params>::type>::type;
};
template <class Fn, class... Args>
struct params_of<Fn, true, false, Args...> {
  using type = typename decay_all<typename signature<Fn>::params>::type;
};

/// Everything the client needs to know about calling F with Args on an engine.
template <class F, class... Args>
struct call_traits {
  using fn_type = std::decay_t<F>;
  static constexpr bool is_fnptr = std::is_pointer_v<fn_type> && std::is_function_v<std::remove_pointer_t<fn_type>>;
  using sig = signature<fn_type>;
  static constexpr bool takes_ns = takes_namespace<fn_type, sig::known, Args...>::value;
  using params = typename params_of<fn_type, sig::known, takes_ns, Args...>::type;
};

// ---- code references on the wire --------------------------------------------------------------

inline void put_code_ref(Writer& w, const CodeRef& r) {
  w.put(std::uint8_t(r.main));
  w.put(r.id.len);
  w.bytes(r.id.bytes.data(), r.id.len);
  w.put(r.offset);
  w.str(r.path);
}

/// A code reference as read from a record: its path still points into the record's bytes.
struct CodeRefView {
  BuildId id;
  std::uint64_t offset = 0;
  bool main = false;
  std::string_view path;

  CodeRef owned() const { return CodeRef{id, offset, main, std::string(path)}; }
};

inline CodeRefView read_code_ref(Reader& r) {
  CodeRefView c;
  c.main = r.get<std::uint8_t>() != 0;
  c.id.len = r.get<std::uint8_t>();
  if (c.id.len > c.id.bytes.size()) throw decode_error("code reference with a build-id of " + std::to_string(c.id.len) + " bytes");
  auto b = r.take(c.id.len);
  std::memcpy(c.id.bytes.data(), b.data(), c.id.len);
  c.offset = r.get<std::uint64_t>();
  c.path = r.str(4096);
  return c;
}

inline CodeRef get_code_ref(Reader& r) { return read_code_ref(r).owned(); }

/// Demangled name of a type, for messages.
inline std::string demangle(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string s = (status == 0 && d) ? d : mangled;
  std::free(d);
  return s;
}

/// Name of a function pointer for messages: its symbol if it has one, else its module and offset.
inline std::string describe_function(const void* p) {
  Dl_info info{};
  if (::dladdr(p, &info) && info.dli_sname) return demangle(info.dli_sname);
  if (info.dli_fname) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "+0x%zx", std::size_t(static_cast<const char*>(p) - static_cast<const char*>(info.dli_fbase)));
    return std::string("function at ") + info.dli_fname + buf;
  }
  return "function at an unknown address";
}

// ---- CADRE_EXPORT registry (functions whose thunks live in a shared library) ------------------

inline std::mutex& export_mutex() {
  static std::mutex m;
  return m;
}
inline std::unordered_map<const void*, Thunk>& export_registry() {
  static std::unordered_map<const void*, Thunk> r;
  return r;
}
inline bool register_export(const void* fn, Thunk t) {
  std::lock_guard lock(export_mutex());
  export_registry()[fn] = t;
  return true;
}
inline Thunk exported_thunk(const void* fn) {
  std::lock_guard lock(export_mutex());
  auto it = export_registry().find(fn);
  return it == export_registry().end() ? nullptr : it->second;
}

// ---- arguments ----------------------------------------------------------------------------------

enum class ArgKind : std::uint8_t { value = 0, name_ref = 1 };

template <class P, class A>
void put_arg(Writer& w, A&& a) {
  if constexpr (is_ref_v<A>) {
    w.put(ArgKind::name_ref);
    w.str(a.name);
  } else {
    static_assert(std::is_convertible_v<A&&, P>, "cadre: an argument does not convert to the function's parameter type");
    // [kind][zeros to 16][u64 length][zeros to 16][typed value]: the one resize that makes room for the
    // value's envelope header covers the fields before it too (they were four vector calls, a fifth of
    // the client's instructions per load-balanced apply_async; callgrind of bench/lb_bench.cpp).
    auto& out = w.buffer();
    const std::size_t kind_at = out.size(), len_at = (kind_at + sizeof(ArgKind) + 15) / 16 * 16, start = len_at + 16;
    if constexpr (std::is_same_v<std::decay_t<A>, P>) encode_typed_at<P>(a, out, start);
    else encode_typed_at<P>(P(std::forward<A>(a)), out, start);
    const ArgKind kind = ArgKind::value;
    const std::uint64_t len = out.size() - start;
    std::memcpy(out.data() + kind_at, &kind, sizeof kind);
    std::memcpy(out.data() + len_at, &len, sizeof len);
  }
}

template <class P>
P get_arg(Reader& r, std::span<const std::byte> all, Namespace& ns, std::size_t index) {
  const auto kind = r.get<ArgKind>();
  if (kind == ArgKind::name_ref) return ns.get<P>(r.str(4096));
  if (kind != ArgKind::value) throw decode_error("argument " + std::to_string(index) + " has an unknown kind");
  r.align(16);
  const auto len = r.get<std::uint64_t>();
  r.align(16);
  const std::size_t at = r.pos();
  r.take(len);
  return decode_typed<P>(parse_typed(all.subspan(at, len)), [index] { return "argument " + std::to_string(index); });
}

/// Encodes the arguments for a function whose (decayed, namespace-less) parameters are Params.
template <class Params, class... Args>
void put_args(Writer& w, Args&&... args) {
  static_assert(std::tuple_size_v<Params> == sizeof...(Args),
                "cadre: wrong number of arguments for this function (a leading cadre::Namespace& parameter is passed by the engine)");
  w.put(std::uint32_t(sizeof...(Args)));
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (put_arg<std::tuple_element_t<I, Params>>(w, std::forward<Args>(args)), ...);
  }(std::index_sequence_for<Args...>{});
}

// ---- the thunk ----------------------------------------------------------------------------------

/// Decodes arguments of types P... in order (a braced initializer evaluates left to right).
template <class... P, std::size_t... I>
std::tuple<P...> get_args([[maybe_unused]] Reader& r, [[maybe_unused]] std::span<const std::byte> all, [[maybe_unused]] Namespace& ns, std::index_sequence<I...>) {
  return std::tuple<P...>{get_arg<P>(r, all, ns, I)...};
}

/// Calls run(fn) with the callable a frame carries: the resolved function pointer, or the object
/// rebuilt from its bytes.
template <class Fn, class Run>
void with_callable(const CallFrame& f, Run&& run) {
  if constexpr (std::is_pointer_v<Fn>) {
    Fn fn = reinterpret_cast<Fn>(f.fn);
    run(fn);
  } else {
    if (f.callable.size() != sizeof(Fn)) throw decode_error("callable object has the wrong size");
    alignas(Fn) std::byte storage[sizeof(Fn)];
    std::memcpy(storage, f.callable.data(), sizeof(Fn));  // implicitly creates the trivially copyable object
    run(*std::launder(reinterpret_cast<Fn*>(storage)));
  }
}

template <class Fn, bool TakesNs, class... P>
void thunk(CallFrame& f) {
  Reader r(f.args);
  if (r.get<std::uint32_t>() != sizeof...(P)) throw decode_error("call record has the wrong number of arguments");
  std::tuple<P...> args = get_args<P...>(r, f.args, *f.ns, std::index_sequence_for<P...>{});
  auto call = [&](auto& fn) -> decltype(auto) {
    return std::apply(
        [&](auto&... a) -> decltype(auto) {
          if constexpr (TakesNs) return std::invoke(fn, *f.ns, a...);
          else return std::invoke(fn, a...);
        },
        args);
  };
  auto run = [&](auto& fn) {
    using R = decltype(call(fn));
    if constexpr (std::is_void_v<R>) call(fn);
    else encode_typed<std::decay_t<R>>(call(fn), *f.result);
  };
  with_callable<Fn>(f, run);
}

template <class Fn, bool TakesNs, class Params>
struct thunk_of;
template <class Fn, bool TakesNs, class... P>
struct thunk_of<Fn, TakesNs, std::tuple<P...>> {
  static constexpr Thunk value = &thunk<Fn, TakesNs, P...>;
};

template <class Fn, bool TakesNs, class Params>
struct call_result;
template <class Fn, class... P>
struct call_result<Fn, true, std::tuple<P...>> {
  using type = std::decay_t<std::invoke_result_t<Fn&, Namespace&, P&...>>;
};
template <class Fn, class... P>
struct call_result<Fn, false, std::tuple<P...>> {
  using type = std::decay_t<std::invoke_result_t<Fn&, P&...>>;
};

/// The call's result type as the client sees it (void for execute-style functions).
template <class F, class... Args>
using call_result_t =
    typename call_result<typename call_traits<F, Args...>::fn_type, call_traits<F, Args...>::takes_ns, typename call_traits<F, Args...>::params>::type;

// ---- libffi (generic engines calling C functions) --------------------------------------------

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

}  // namespace detail
}  // namespace cadre

/// Makes a function callable on generic `cadre-engine`s: put `CADRE_EXPORT(my_function)` at namespace
/// scope in the shared library that defines it, and load that library in the client.
#define CADRE_EXPORT(fn)                                                                                      \
  [[maybe_unused]] static const bool cadre_export_##fn = ::cadre::detail::register_export(                    \
      reinterpret_cast<const void*>(&(fn)),                                                                   \
      ::cadre::detail::thunk_of<decltype(&(fn)), ::cadre::detail::call_traits<decltype(&(fn))>::takes_ns,     \
                                ::cadre::detail::call_traits<decltype(&(fn))>::params>::value)
