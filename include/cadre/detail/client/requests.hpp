// cadre/detail/client/requests.hpp — building apply/push/pull/erase records and sending them to a view's engines.
#pragma once

#include <cadre/detail/client/task_result.hpp>
#include <cadre/detail/client/client_core.hpp>
#include <cadre/detail/client/transport.hpp>
#include <cadre/detail/wire/ffi_call.hpp>
#include <cadre/detail/wire/module_ref.hpp>
#include <cadre/detail/wire/map_call.hpp>
#include <cadre/detail/client/partition.hpp>
#include <cadre/function_ref.hpp>

#include <memory>
#include <string_view>
#include <vector>

namespace cadre::detail {

/// Checks a namespace name: 1 to 128 bytes.
inline void check_name(std::string_view name) {
  if (name.empty() || name.size() > 128)
    throw std::invalid_argument("invalid namespace name '" + std::string(name.substr(0, 40)) + (name.size() > 40 ? "..." : "") +
                                "': names are 1 to 128 bytes long");
}

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

/// Writes the callable part of an apply record: thunk `own`, then the function or the callable's bytes.
/// When the engines run another program, `fallback` may name an exported thunk (CADRE_EXPORT) instead.
template <Thunk own, class F>
void put_callable(Writer& w, bool same_program, Thunk fallback, const Transport& where, const F& f) {
  using Fn = std::decay_t<F>;
  if constexpr (std::is_pointer_v<Fn>) {
    // The bytes depend only on (pointer, same_program, fallback): the last ones are kept per thread, and
    // a loop of applies of one function appends them at once. Writing them field by field was a sixth
    // of the client's instructions per load-balanced apply_async (callgrind of bench/lb_bench.cpp).
    // They are kept padded to 16 bytes, as they are written at the start of a record.
    struct Last {
      const void* p = nullptr;
      bool same_program = false;
      Thunk fallback = nullptr;
      std::vector<std::byte> bytes;
      std::size_t unpadded = 0;
    };
    thread_local Last last;
    const void* p = reinterpret_cast<const void*>(f);
    if (last.p != p || last.same_program != same_program || last.fallback != fallback || last.bytes.empty()) {
      std::vector<std::byte> bytes;
      Writer cw(bytes);
      cw.put(std::uint8_t(0));
      put_code_ref(cw, same_program ? thunk_ref<own>() : locate(reinterpret_cast<const void*>(fallback), "exported thunk"));
      cw.put(std::uint8_t(1));
      put_code_ref(cw, function_code_ref(p));
      cw.put(std::uint32_t(0));
      const std::size_t unpadded = bytes.size();
      cw.align(16);
      last = {p, same_program, fallback, std::move(bytes), unpadded};
    }
    if (w.size() % 16 == 0) {
      w.bytes(last.bytes.data(), last.bytes.size());
      return;
    }
    w.bytes(last.bytes.data(), last.unpadded);
  } else {
    static_assert(std::is_trivially_copyable_v<Fn>,
                  "cadre: a lambda sent to engines may only capture trivially copyable values (numbers, "
                  "plain structs), which are shipped by value; pass other values as arguments to apply()");
    if (!same_program)
      throw function_error("cannot run a lambda or function object on " + where.describe() +
                           ": its engines run another program. Use an embedded cadre::Cluster, `cadre start --engine "
                           "<this program>` or `cadre run`, or pass a C function or a CADRE_EXPORTed function instead");
    w.put(std::uint8_t(0));
    put_code_ref(w, thunk_ref<own>());
    w.put(std::uint8_t(0));
    w.put(std::uint32_t(sizeof(Fn)));
    w.bytes(&f, sizeof(Fn));
  }
  w.align(16);
}

inline std::string other_program_message(const void* p, const Transport& where) {
  return "cannot call " + describe_function(p) + " on " + where.describe() +
         ": its engines run another program, which does not contain this function. Ways out: start the "
         "cluster with `cadre start --engine <this program>` or `cadre run`, or use an embedded "
         "cadre::Cluster; or export the function from a shared library with CADRE_EXPORT; or call a C "
         "function with numeric parameters and result from a shared library (like ::getpid or ::cos)";
}

/// Encodes an apply record for calling f(args...) on engines; `same_program` says whether the engines
/// run this executable.
template <class F, class... Args>
void encode_apply(std::vector<std::byte>& out, bool same_program, const Transport& where, F&& f, Args&&... args) {
  using CT = call_traits<F, Args...>;
  using Fn = typename CT::fn_type;
  using Params = typename CT::params;
  constexpr Thunk own = thunk_of<Fn, CT::takes_ns, Params>::value;
  Writer w(out);
  if constexpr (CT::is_fnptr) {
    const void* p = reinterpret_cast<const void*>(f);
    if (!p) throw function_error("cannot call a null function pointer on engines");
    const Thunk exported = same_program ? nullptr : exported_thunk(p);
    if (!same_program && !exported) {
      const CodeRef& fn_ref = function_code_ref(p);
      if constexpr (ffi_signature<Fn>::value && !CT::takes_ns) {
        if (!fn_ref.main) {
          w.put(std::uint8_t(1));
          ffi_writer<typename signature<Fn>::result, typename signature<Fn>::params>::put(w, fn_ref, std::forward<Args>(args)...);
          return;
        }
      }
      throw function_error(other_program_message(p, where));
    }
    put_callable<own>(w, same_program, exported, where, f);
  } else {
    put_callable<own>(w, same_program, nullptr, where, f);
  }
  put_args<Params>(w, std::forward<Args>(args)...);
}

/// The apply record of f(args...) for the engines behind `where`, in a per-thread buffer that is
/// reused (a loop of applies does not allocate); valid until this thread's next call.
template <class F, class... Args>
std::span<const std::byte> apply_record(const Transport& where, F&& f, Args&&... args) {
  thread_local std::vector<std::byte> buf;
  buf.clear();
  encode_apply(buf, where.engines_run_this_program(), where, std::forward<F>(f), std::forward<Args>(args)...);
  return buf;
}

/// Encodes one map task: f over the zipped chunks (each a std::vector<V>).
template <class F, class... V>
void encode_map(std::vector<std::byte>& out, bool same_program, const Transport& where, const F& f,
                const std::vector<V>&... chunks) {
  using Fn = std::decay_t<F>;
  using R = std::decay_t<std::invoke_result_t<Fn&, const V&...>>;
  if constexpr (std::is_pointer_v<Fn>) {
    if (!same_program) throw function_error(other_program_message(reinterpret_cast<const void*>(f), where) +
                                            " (map needs engines that run this program)");
  }
  Writer w(out);
  put_callable<&map_thunk<Fn, R, V...>>(w, same_program, nullptr, where, f);
  put_args<std::tuple<std::vector<V>...>>(w, chunks...);
}

/// A view's engines and the client they belong to; what EngineView and DirectView are made of.
class Targets {
 public:
  Targets() = default;
  Targets(std::shared_ptr<ClientCore> core, std::vector<int> ids) : core_(std::move(core)), ids_(std::move(ids)) {}

  const std::vector<int>& ids() const noexcept { return ids_; }
  const std::shared_ptr<ClientCore>& core() const noexcept { return core_; }

  template <class F, class... Args>
  std::vector<Task> apply(F&& f, Args&&... args) const {
    const auto record = apply_record(core_->transport(), std::forward<F>(f), std::forward<Args>(args)...);
    std::vector<Task> tasks;
    tasks.reserve(ids_.size());
    for (int e : ids_) tasks.push_back(core_->submit(std::uint32_t(e), RecordKind::apply, 0, record));
    return tasks;
  }

  /// Sends an apply record to the one engine of a one-engine view, as a task made by the caller
  /// (AsyncResult::with_new_task).
  void send_apply(Task task, std::span<const std::byte> record) const {
    core_->submit(std::move(task), std::uint32_t(ids_.at(0)), RecordKind::apply, 0, record);
  }

  template <class T>
  std::vector<Task> push(std::string_view name, const T& value) const {
    check_name(name);
    thread_local std::vector<std::byte> buf;
    buf.clear();
    Writer w(buf);
    w.str(name);
    const std::size_t name_bytes = buf.size();
    w.align(16);
    std::vector<Task> tasks;
    tasks.reserve(ids_.size());
    if constexpr (is_raw_array_v<T>) {
      const std::size_t typed_len = typed_size(value);
      if (buf.size() + typed_len > kInlineBytes) {
        // A large array is written straight into each engine's block: one copy per engine, no encoding
        // on the heap first (that was two more passes over the bytes, a third of pdot's client time).
        const auto parts = codec_impl::raw_parts(value);
        const auto head = std::span<const std::byte>(buf).first(name_bytes);
        for (int e : ids_) {
          OutBlock b = core_->transport().allocate(std::uint32_t(e), typed_len);
          try {
            std::byte* payload = b.bytes.data() + write_typed_header<T>(b.bytes.data(), kRawHeader + parts.n * sizeof(*parts.data));
            copy_bytes(write_raw_header(payload, parts.a, parts.b), parts.data, parts.n * sizeof(*parts.data));
          } catch (...) {
            core_->transport().discard(b);
            throw;
          }
          tasks.push_back(core_->submit(std::uint32_t(e), RecordKind::push, 0, head, &b));
        }
        return tasks;
      }
    }
    encode_typed(value, buf);
    if (buf.size() <= kInlineBytes) {
      for (int e : ids_) tasks.push_back(core_->submit(std::uint32_t(e), RecordKind::push, 0, buf));
      return tasks;
    }
    // Large: each engine gets its own block (it owns and frees it), written straight from the encoding.
    const auto typed = std::span<const std::byte>(buf).subspan((name_bytes + 15) / 16 * 16);
    const auto head = std::span<const std::byte>(buf).first(name_bytes);
    for (int e : ids_) {
      OutBlock b = core_->transport().allocate(std::uint32_t(e), typed.size());
      std::memcpy(b.bytes.data(), typed.data(), typed.size());
      tasks.push_back(core_->submit(std::uint32_t(e), RecordKind::push, 0, head, &b));
    }
    return tasks;
  }

  std::vector<Task> named(RecordKind kind, std::string_view name) const {
    check_name(name);
    std::vector<std::byte> buf;
    Writer w(buf);
    w.str(name);
    std::vector<Task> tasks;
    tasks.reserve(ids_.size());
    for (int e : ids_) tasks.push_back(core_->submit(std::uint32_t(e), kind, 0, buf));
    return tasks;
  }

  std::vector<Task> simple(RecordKind kind) const {
    std::vector<Task> tasks;
    for (int e : ids_) tasks.push_back(core_->submit(std::uint32_t(e), kind, 0, {}));
    return tasks;
  }

 private:
  std::shared_ptr<ClientCore> core_;
  std::vector<int> ids_;
};

}  // namespace cadre::detail
