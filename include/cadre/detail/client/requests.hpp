// cadre/detail/client/requests.hpp — building apply/push/pull/erase records and sending them to a view's engines.
#pragma once

#include <cadre/detail/client/task_result.hpp>
#include <cadre/detail/client/client_core.hpp>
#include <cadre/detail/client/partition.hpp>
#include <cadre/detail/client/transport.hpp>
#include <cadre/detail/wire/apply_record.hpp>
#include <cadre/detail/wire/args.hpp>
#include <cadre/detail/wire/call.hpp>
#include <cadre/detail/wire/exports.hpp>
#include <cadre/detail/wire/map_call.hpp>
#include <cadre/detail/wire/module_ref.hpp>

#include <memory>
#include <string_view>
#include <vector>

namespace cadre::detail {

/// Checks a namespace name: 1 to 128 bytes. Throws argument_error.
inline void check_name(std::string_view name) {
  if (name.empty() || name.size() > 128)
    throw argument_error("invalid namespace name '" + std::string(name.substr(0, 40)) + (name.size() > 40 ? "..." : "") + "': " +
                         (name.empty() ? std::string("it is empty") : "it is " + std::to_string(name.size()) + " bytes long") +
                         "; names are 1 to 128 bytes long");
}

/// Refuses to send a lambda or function object to engines that run another program: its code is not
/// there, and it cannot be exported.
inline void require_same_program(bool same_program, const Transport& where) {
  if (!same_program)
    throw function_error("cannot run a lambda or function object on " + where.describe() +
                         ": its engines run another program. Use an embedded cadre::Cluster, `cadre start --engine "
                         "<this program>` or `cadre run`, or pass a C function or a CADRE_EXPORTed function instead");
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
          ffi_call_writer<typename signature<Fn>::result, typename signature<Fn>::params>::put(w, fn_ref, std::forward<Args>(args)...);
          return;
        }
      }
      throw function_error(other_program_message(p, where));
    }
    put_function_call<own>(w, p, exported);
  } else {
    require_same_program(same_program, where);
    put_object_call<own>(w, f);
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
  constexpr Thunk own = &map_thunk<Fn, R, V...>;
  Writer w(out);
  if constexpr (std::is_pointer_v<Fn>) {
    if (!same_program) throw function_error(other_program_message(reinterpret_cast<const void*>(f), where) +
                                            " (map needs engines that run this program)");
    put_function_call<own>(w, reinterpret_cast<const void*>(f), nullptr);
  } else {
    require_same_program(same_program, where);
    put_object_call<own>(w, f);
  }
  put_args<std::tuple<std::vector<V>...>>(w, chunks...);
}

/// "0, 1, 2": engine ids as views print them.
inline std::string join_ids(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) {
    if (!s.empty()) s += ", ";
    s += std::to_string(id);
  }
  return s;
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
