// src/cli/main.cpp — `cadre`: the command line (CLI11) and the dispatch to src/cli/commands.hpp.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cadre/cadre.hpp>
#include <admin/admin.hpp>

#include "commands.hpp"

namespace {

using namespace cadre::cli;

/// A cluster name as detail::validate_cluster_name() accepts it; a bad one is a usage error.
const CLI::Validator kClusterName(
    [](std::string& s) -> std::string {
      try {
        cadre::detail::validate_cluster_name(s);
        return {};
      } catch (const cadre::argument_error& e) {
        return e.what();
      }
    },
    "", "cluster name");

/// "512M", "2G", ... rewritten to a plain byte count before CLI11 converts it.
const CLI::Validator kByteSize(
    [](std::string& s) -> std::string {
      try {
        s = std::to_string(cadre::detail::parse_byte_size(s));
        return {};
      } catch (const cadre::argument_error& e) {
        return e.what();
      }
    },
    "", "byte size");

/// The cluster a command acts on without --name: $CADRE_CLUSTER, else "default" (as cadre::Client).
std::string default_name() {
  const char* e = std::getenv("CADRE_CLUSTER");
  return e && *e ? e : "default";
}

constexpr double kMinTimeout = 0.1, kMaxTimeout = 86400;  // seconds: 100 ms to one day

/// A --timeout in seconds, from kMinTimeout to kMaxTimeout. CLI11's own range check would print the
/// limits of a double (300 digits) and let "nan" through; outside this range the milliseconds
/// overflow (1e300) or round to zero (0.0001), and a start then blames its engines.
const CLI::Validator kTimeoutSeconds(
    [](std::string& s) -> std::string {
      double v = 0;
      if (!CLI::detail::lexical_cast(s, v) || !std::isfinite(v))
        return "'" + s + "' is not a number of seconds; give 0.1 to 86400 seconds (one day), e.g. 30";
      if (v < kMinTimeout || v > kMaxTimeout)
        return s + " s is out of range; give 0.1 to 86400 seconds (one day), e.g. 30";
      return {};
    },
    "0.1 to 86400", "seconds");

std::chrono::milliseconds to_ms(double seconds) {  // seconds passed kTimeoutSeconds
  return std::chrono::milliseconds(std::llround(seconds * 1000.0));
}

CLI::Option* add_name(CLI::App* cmd, std::string& name, const char* what) {
  return cmd
      ->add_option("--name", name, std::string(what) + " (default: $CADRE_CLUSTER, else 'default')")
      ->type_name("NAME")
      ->check(kClusterName);
}

CLI::Option* add_engines(CLI::App* cmd, int& n) {
  return cmd->add_option("-n,--engines", n, "number of engines (default: one per CPU)")
      ->type_name("N")
      ->check(CLI::Range(1, int(cadre::detail::kMaxEngines)));
}

CLI::Option* add_segment_size(CLI::App* cmd, std::uint64_t& size) {
  return cmd
      ->add_option(
          "--segment-size", size,
          "shared segment size, e.g. 512M or 2G; only what is used takes memory (default: 1G)")
      ->type_name("SIZE")
      ->transform(kByteSize);
}

CLI::Option* add_threads(CLI::App* cmd, int& threads) {
  return cmd
      ->add_option("--threads-per-engine", threads,
                   "oneTBB/Eigen threads per engine (default: CPUs / engines)")
      ->type_name("T")
      ->check(CLI::Range(1, 4096));
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{
      "cadre - run a cluster of engine processes on this machine and drive it from C++ programs"};
  app.name("cadre");
  app.set_version_flag("--version", cadre::version(), "print the cadre version and exit");
  app.require_subcommand(1);
  const std::string fallback_name = default_name();

  StartOptions start_opts;
  double start_timeout = 30;
  auto* start_cmd =
      app.add_subcommand("start", "start a detached cluster; returns once its engines are ready");
  add_engines(start_cmd, start_opts.engines);
  add_name(start_cmd, start_opts.name, "cluster name");
  start_cmd
      ->add_option("--engine", start_opts.engine,
                   "engine executable, a program that calls cadre::init(argc, argv) first "
                   "(default: cadre-engine next to this cadre)")
      ->type_name("PATH");
  add_segment_size(start_cmd, start_opts.segment_size);
  add_threads(start_cmd, start_opts.threads_per_engine);
  start_cmd->add_flag("--restart", start_opts.restart,
                      "replace an engine that dies (same id, new generation)");
  start_cmd
      ->add_option("--log-dir", start_opts.log_dir,
                   "where engine-N.log files go (default: $XDG_RUNTIME_DIR/cadre/NAME, else "
                   "/tmp/cadre-UID/NAME)")
      ->type_name("DIR");
  start_cmd
      ->add_option("--timeout", start_timeout,
                   "seconds to wait for the engines to be ready (default: 30)")
      ->type_name("SECONDS")
      ->check(kTimeoutSeconds);

  StopOptions stop_opts;
  double stop_timeout = 10;
  auto* stop_cmd =
      app.add_subcommand("stop", "stop a cluster (or clean up one whose launcher died)");
  auto* stop_name = add_name(stop_cmd, stop_opts.name, "cluster name");
  // Not CLI11's excludes(): its help would print "Excludes: --all" inside the option's description.
  stop_cmd->add_flag("--all", stop_opts.all,
                     "stop every cluster of this user that `cadre list` shows, each reported");
  stop_cmd
      ->add_option("--timeout", stop_timeout,
                   "seconds to wait for the cluster (with --all: each cluster) to be gone "
                   "(default: 10)")
      ->type_name("SECONDS")
      ->check(kTimeoutSeconds);

  std::string status_name;
  auto* status_cmd =
      app.add_subcommand("status", "show a cluster: launcher, segment use, and each engine");
  add_name(status_cmd, status_name, "cluster name");

  auto* list_cmd = app.add_subcommand("list", "list this user's clusters");

  RunOptions run_opts;
  double run_timeout = 30;
  auto* run_cmd = app.add_subcommand("run",
                                     "run PROGRAM as the client of a cluster whose engines are "
                                     "PROGRAM too; exits with its status");
  add_engines(run_cmd, run_opts.engines);
  run_cmd->add_option("--name", run_opts.name, "cluster name (default: a unique one)")
      ->type_name("NAME")
      ->check(kClusterName);
  add_segment_size(run_cmd, run_opts.segment_size);
  add_threads(run_cmd, run_opts.threads_per_engine);
  run_cmd
      ->add_option("--timeout", run_timeout,
                   "seconds to wait for the engines to be ready (default: 30)")
      ->type_name("SECONDS")
      ->check(kTimeoutSeconds);
  run_cmd
      ->add_option("command", run_opts.command,
                   "the program (its main() calls cadre::init first) and its arguments")
      ->type_name("PROGRAM ARGS...")
      ->required();
  run_cmd->footer(
      "PROGRAM runs once as the client, with CADRE_CLUSTER set to the cluster's name;\n"
      "each engine is PROGRAM too, started by the cluster. Put -- before PROGRAM when\n"
      "its arguments start with '-':\n"
      "  cadre run -n 4 -- ./app --size 1000");

  // The exit statuses each command can give; help2man makes each "Exit status:" list a section.
  const auto exit_statuses = [](std::string_view ok, std::string_view failure, int code, std::string_view meaning) {
    return fmt::format(
        "Exit status:\n"
        "  {:<3} {}\n"
        "  {:<3} failure: {} (the message says why)\n"
        "  {:<3} usage error\n"
        "  {:<3} {}",
        kExitOk, ok, kExitFailure, failure, kExitUsage, code, meaning);
  };
  start_cmd->footer(exit_statuses("started", "the cluster could not start", kExitAlreadyRunning,
                                  "already running: a cluster of that name is running"));
  stop_cmd->footer(exit_statuses("stopped; with --all, every cluster stopped, or there was none",
                                 "a cluster could not be stopped", kExitNotRunning, "not running: no cluster of that name exists"));
  status_cmd->footer(exit_statuses("shown", "the cluster could not be read", kExitNotRunning,
                                   "not running: no cluster of that name exists"));

  // Set after the subcommands exist: CLI11 copies a parent's footer into subcommands made later.
  app.footer(fmt::format(
      "Examples:\n"
      "  cadre start -n 4             start the cluster 'default' with 4 engines\n"
      "  cadre status                 show its engines\n"
      "  cadre stop                   stop it\n"
      "  cadre stop --all             stop every cluster of this user\n"
      "  cadre run -n 4 -- ./app      run ./app with its own 4 engines (./app calls cadre::init)\n"
      "\n"
      "Exit status:\n"
      "  {:<3} success\n"
      "  {:<3} failure: the command could not do its job (the message says why)\n"
      "  {:<3} usage error: the command line was wrong\n"
      "  {:<3} already running: `cadre start` of a name a running cluster has\n"
      "  {:<3} not running: `cadre stop` or `cadre status` of a name no cluster has\n"
      "`cadre run` exits with the status of its program (128 + N when signal N ended it).",
      kExitOk, kExitFailure, kExitUsage, kExitAlreadyRunning, kExitNotRunning));

  // CLI11 would call a misspelt command "A subcommand is required"; name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string known;
    bool found = false;
    for (const CLI::App* sub : app.get_subcommands({})) {
      found = found || sub->get_name() == argv[1];
      known += (known.empty() ? "" : ", ") + sub->get_name();
    }
    if (!found) {
      std::fprintf(stderr, "cadre: unknown command '%s'; the commands are %s (see cadre --help)\n",
                   argv[1], known.c_str());
      return kExitUsage;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with status 0; everything else is a usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  if (stop_opts.all && stop_name->count() > 0) {
    std::fprintf(stderr, "cadre stop: --all stops every cluster; give it or --name NAME, not both\n");
    return kExitUsage;
  }

  // Only the command that acts on a cluster needs a name: `cadre list` works whatever $CADRE_CLUSTER says.
  std::string* const name = *start_cmd ? &start_opts.name
                            : *stop_cmd && !stop_opts.all ? &stop_opts.name
                            : *status_cmd ? &status_name
                                          : nullptr;
  if (name && name->empty()) {
    try {
      cadre::detail::validate_cluster_name(fallback_name);
    } catch (const cadre::argument_error& e) {
      std::fprintf(stderr, "cadre: $CADRE_CLUSTER: %s\n", e.what());
      return kExitUsage;
    }
    *name = fallback_name;
  }
  start_opts.timeout = to_ms(start_timeout);
  stop_opts.timeout = to_ms(stop_timeout);
  run_opts.timeout = to_ms(run_timeout);

  const char* sub = "";
  try {
    if (*start_cmd) {
      sub = "start";
      return start(start_opts);
    }
    if (*stop_cmd) {
      sub = "stop";
      return stop(stop_opts);
    }
    if (*status_cmd) {
      sub = "status";
      return status(status_name);
    }
    if (*list_cmd) {
      sub = "list";
      return list();
    }
    if (*run_cmd) {
      sub = "run";
      return run(run_opts);
    }
  } catch (const exit_error& e) {
    std::fprintf(stderr, "cadre %s: %s\n", sub, e.what());
    return e.status();
  } catch (const std::exception& e) {
    // cadre::error carries messages written for the user.
    std::fprintf(stderr, "cadre %s: %s\n", sub, e.what());
    return kExitFailure;
  }
  return kExitUsage;  // unreachable: require_subcommand(1)
} catch (const std::exception& e) {  // setting up the command line failed (out of memory, a CLI11 bug)
  std::fprintf(stderr, "cadre: %s\n", e.what());
  return kExitFailure;
}
