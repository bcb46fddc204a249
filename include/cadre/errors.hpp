// cadre/errors.hpp — the typed error hierarchy: every failure a user can see derives from cadre::error.
#pragma once

#include <csignal>
#include <exception>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cadre {

/// Base of every cadre error; what() says what went wrong and how to fix it.
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A function that ran on an engine threw: engine id, demangled exception type and message.
class remote_error : public error {
 public:
  /// what() reads "engine 2 raised std::runtime_error: message".
  remote_error(int engine_id, std::string type, std::string message)
      : error("engine " + std::to_string(engine_id) + " raised " + type + ": " + message),
        engine_id_(engine_id), type_(std::move(type)), message_(std::move(message)) {}
  /// The engine the function threw on.
  int engine_id() const noexcept { return engine_id_; }
  /// The demangled type of what it threw, e.g. "std::invalid_argument".
  const std::string& type() const noexcept { return type_; }
  /// The thrown exception's what().
  const std::string& message() const noexcept { return message_; }

 private:
  int engine_id_;
  std::string type_, message_;
};

/// A task's engine died while the task was queued or running (never a hang).
class engine_error : public error {
 public:
  /// detail, when given, is appended to what(): the engine's stack at the crash, or how it exited.
  engine_error(int engine_id, int pid, int signal, const std::string& detail = {})
      : error(describe(engine_id, pid, signal, detail)), engine_id_(engine_id), pid_(pid), signal_(signal) {}
  /// The engine that died.
  int engine_id() const noexcept { return engine_id_; }
  /// Its process id when it died.
  int pid() const noexcept { return pid_; }
  /// The signal that killed the engine, or 0 when it exited or the signal is unknown.
  int signal() const noexcept { return signal_; }

 private:
  static std::string describe(int id, int pid, int sig, const std::string& detail) {
    std::string s = "engine " + std::to_string(id) + " (pid " + std::to_string(pid) + ") died";
    if (sig > 0) s += std::string(" from signal ") + std::to_string(sig) + " (" + sigabbrev(sig) + ")";
    s += " before finishing the task";
    if (!detail.empty()) s += "; " + detail;
    return s;
  }
  static std::string sigabbrev(int sig) {
    const char* d = ::strsignal(sig);
    return d ? d : "unknown";
  }
  int engine_id_, pid_, signal_;
};

/// A many-engine call failed on some engines: one remote/engine error per failed engine.
class composite_error : public error {
 public:
  /// One engine's failure.
  struct failure {
    int engine_id;             ///< the engine whose task failed
    std::string what;          ///< its error's what()
    std::exception_ptr error;  ///< the engine's own error (remote_error, engine_error, ...), to rethrow
  };
  /// what() lists every failure, one line per engine.
  explicit composite_error(std::vector<failure> failures)
      : error(describe(failures)), failures_(std::move(failures)) {}
  /// The failures, in the order of the view's targets.
  const std::vector<failure>& failures() const noexcept { return failures_; }

  /// Throws the first engine's own error (IPython's raise_exception()).
  [[noreturn]] void rethrow_first() const {
    if (failures_.empty() || !failures_.front().error) throw error(what());
    std::rethrow_exception(failures_.front().error);
  }

 private:
  static std::string describe(const std::vector<failure>& f) {
    std::string s = std::to_string(f.size()) + " engine task(s) failed:";
    for (const auto& x : f) s += "\n  [" + std::to_string(x.engine_id) + "] " + x.what;
    return s;
  }
  std::vector<failure> failures_;
};

/// An argument to a cadre call is invalid: a cluster or namespace name, an engine count, a segment
/// size, an engine program. The message says what is wrong with it and what is allowed. It is not
/// also a std::invalid_argument: that would make std::exception an ambiguous base, which a
/// `catch (const std::exception&)` no longer catches. A bad engine index or slice is
/// std::out_of_range, as for the standard containers.
struct argument_error : error {
  using error::error;
};

/// A wait ran out of time; the task itself goes on.
struct timeout_error : error {
  using error::error;
};

/// No value of that name on that engine.
class name_error : public error {
 public:
  /// what() names the name and the engine, and how to define it.
  name_error(int engine_id, std::string name)
      : error("name '" + name + "' is not defined on engine " + std::to_string(engine_id) +
              "; push it first (view[\"" + name + "\"] = value) or check the spelling"),
        engine_id_(engine_id), name_(std::move(name)) {}
  /// The engine that lacks the name.
  int engine_id() const noexcept { return engine_id_; }
  /// The name that is not defined.
  const std::string& name() const noexcept { return name_; }

 private:
  int engine_id_;
  std::string name_;
};

/// A stored value was asked for as another type; both types are named.
class type_error : public error {
 public:
  /// what() reads "<context>: stored vec<f64>, requested vec<i32>".
  type_error(std::string stored, std::string requested, const std::string& context)
      : error(context + ": stored " + stored + ", requested " + requested),
        stored_(std::move(stored)), requested_(std::move(requested)) {}
  /// The structural name of the stored value's type (codec<T>::name()), e.g. "vec<f64>".
  const std::string& stored() const noexcept { return stored_; }
  /// The structural name of the type asked for.
  const std::string& requested() const noexcept { return requested_; }

 private:
  std::string stored_, requested_;
};

/// Bytes that do not decode as the type they claim (a corrupt or truncated record).
struct decode_error : error {
  using error::error;
};

/// No such cluster, or it is not usable (stale, foreign, half-made).
struct connection_error : error {
  using error::error;
};

/// A function cannot be called on these engines; the message names it and the ways out.
struct function_error : error {
  using error::error;
};

/// The segment has no room for a value; says how big it is and how to ask for more.
struct capacity_error : error {
  using error::error;
};

/// A queued task was aborted before it ran.
struct aborted_error : error {
  using error::error;
};

/// A task did not run because a task it depended on failed.
struct dependency_error : error {
  using error::error;
};

}  // namespace cadre
