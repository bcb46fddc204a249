// cadre/detail/wire/call.hpp — thunks: the client-compiled functions that decode a call's arguments, call, and encode the result.
//
// A thunk is a template instance compiled into the client for one (callable, parameters) pair. The
// engine resolves it from the apply record (apply_record.hpp) and hands it a CallFrame; the thunk
// reads the argument list (args.hpp), calls the function or the callable object, and appends the
// typed result. The signature traits here are what the client uses to pick the thunk and the
// parameter types the arguments are converted to.
#pragma once

#include <cadre/detail/base/interrupt_gate.hpp>
#include <cadre/detail/wire/args.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/errors.hpp>
#include <cadre/namespace.hpp>

#include <cstddef>
#include <cstring>
#include <functional>
#include <new>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace cadre::detail {

/// What an engine hands a thunk.
struct CallFrame {
  void* fn;                                // resolved function pointer, or nullptr for callable objects
  std::span<const std::byte> callable;     // bytes of a trivially copyable callable object
  std::span<const std::byte> args;         // the argument list
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

// ---- the thunk ----------------------------------------------------------------------------------

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
    const UserCall armed;  // arguments are decoded and the result encoded with abort()'s jump disarmed
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

/// The thunk that calls a Fn with parameters Params (a std::tuple), after the namespace if TakesNs.
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

}  // namespace cadre::detail
