// orgpatch-emulator: the command line around emulator::server.
#include "emulator/cert.hpp"
#include "emulator/config.hpp"
#include "emulator/server.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <pthread.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace orgpatch::emulator;

constexpr std::string_view k_usage =
    "usage: orgpatch-emulator [--listen HOST:PORT] [--tls-cert F --tls-key F | --write-cert DIR | --plain]\n"
    "                         [--token-file F] [--config F] [--threads N] [--no-rate-limit]\n"
    "\n"
    "  --listen HOST:PORT  address to serve on (default 127.0.0.1:8443; port 0 picks a free one)\n"
    "  --tls-cert F        TLS certificate chain (PEM), with --tls-key F its private key\n"
    "  --write-cert DIR    write a self-signed certificate (DIR/cert.pem, DIR/key.pem) and serve it;\n"
    "                      give DIR/cert.pem to the client as its CA file\n"
    "  --plain             plain HTTP instead of TLS\n"
    "  --token-file F      accept only the token in F (otherwise any non-empty bearer token)\n"
    "  --config F          YAML settings: limits, rate_limit, remote_limit, faults, ... (flags override them)\n"
    "  --threads N         serve on N threads (default 1)\n"
    "  --no-rate-limit     turn the rate limits off (on by default: 500 requests / 10 s per token,\n"
    "                      50 / 10 s per integrated account; and the remote limit, if configured)\n"
    "\n"
    "Prints 'listening on URL' once it serves; SIGINT or SIGTERM stops it.\n";

/// A command-line mistake: reported with the usage, exit status 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct cli {
  std::vector<std::string> args;
  std::size_t at = 0;

  /// The value of option `name`: "--name=value" or the next argument.
  std::string value(std::string_view arg, std::string_view name) {
    if (arg.size() > name.size() && arg[name.size()] == '=') return std::string(arg.substr(name.size() + 1));
    if (at + 1 >= args.size()) throw usage_error(std::string(name) + " needs a value");
    return args[++at];
  }
};

/// The option name of `arg` ("--listen" of "--listen=x").
std::string_view option_name(std::string_view arg) { return arg.substr(0, arg.find('=')); }

emulator_config parse_command_line(int argc, char** argv) {
  cli c{std::vector<std::string>(argv + 1, argv + argc)};
  emulator_config cfg;

  // The config file first, whatever its place, so that flags override it.
  for (c.at = 0; c.at < c.args.size(); ++c.at) {
    const std::string_view arg = c.args[c.at];
    if (option_name(arg) == "--config") {
      const std::string path = c.value(arg, "--config");
      try {
        load_config_file(path, cfg);
      } catch (const std::exception& e) {
        throw usage_error(e.what());
      }
    }
  }

  bool files = false, write_cert = false, plain = false;
  std::string cert, key;
  for (c.at = 0; c.at < c.args.size(); ++c.at) {
    const std::string_view arg = c.args[c.at];
    const std::string_view name = option_name(arg);
    if (name == "--listen") {
      try {
        auto [host, port] = parse_listen(c.value(arg, name));
        cfg.server.host = std::move(host);
        cfg.server.port = port;
      } catch (const std::invalid_argument& e) {
        throw usage_error(std::string("--listen: ") + e.what());
      }
    } else if (name == "--tls-cert") {
      cert = c.value(arg, name);
      files = true;
    } else if (name == "--tls-key") {
      key = c.value(arg, name);
      files = true;
    } else if (name == "--write-cert") {
      cfg.write_cert_dir = c.value(arg, name);
      if (cfg.write_cert_dir.empty()) throw usage_error("--write-cert needs a directory");
      write_cert = true;
    } else if (arg == "--plain") {
      plain = true;
    } else if (name == "--token-file") {
      cfg.token_file = c.value(arg, name);
    } else if (name == "--config") {
      c.value(arg, name);  // read in the first pass
    } else if (name == "--threads") {
      const std::string v = c.value(arg, name);
      std::size_t used = 0;
      unsigned long n = 0;
      try {
        n = std::stoul(v, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != v.size() || v.empty() || n < 1 || n > 1024)
        throw usage_error("--threads must be 1 to 1024, got '" + v + "'");
      cfg.server.threads = static_cast<unsigned>(n);
    } else if (arg == "--no-rate-limit") {
      // Truto's limits and the remote one: the demo and the benchmarks are not about limits.
      cfg.server.api.rate_limit.enabled = false;
      cfg.server.api.remote_limit.enabled = false;
    } else {
      throw usage_error("unknown option '" + std::string(arg) + "'");
    }
  }

  if (static_cast<int>(files) + static_cast<int>(write_cert) + static_cast<int>(plain) > 1)
    throw usage_error("choose one of --tls-cert/--tls-key, --write-cert and --plain");
  if (files) {
    if (cert.empty() || key.empty()) throw usage_error("--tls-cert and --tls-key go together");
    cfg.server.cert_file = cert;
    cfg.server.key_file = key;
    cfg.mode = tls_mode::files;
  } else if (write_cert) {
    cfg.mode = tls_mode::write_cert;
  } else if (plain) {
    cfg.mode = tls_mode::plain;
  }
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  // stdout carries only the "listening on" line; logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("orgpatch-emulator"));

  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << k_usage;
      return 0;
    }
  }

  emulator_config cfg;
  try {
    cfg = parse_command_line(argc, argv);
    if (cfg.token_file) cfg.server.api.token = read_token_file(*cfg.token_file);
  } catch (const std::exception& e) {
    std::cerr << "orgpatch-emulator: " << e.what() << "\n\n" << k_usage;
    return 2;
  }

  try {
    switch (cfg.mode) {
      case tls_mode::plain:
        cfg.server.plain = true;
        break;
      case tls_mode::files:
        break;
      case tls_mode::write_cert: {
        const cert_paths paths = write_self_signed_cert(cfg.write_cert_dir);
        cfg.server.cert_file = paths.cert.string();
        cfg.server.key_file = paths.key.string();
        std::cerr << "orgpatch-emulator: wrote " << paths.cert.string() << " and " << paths.key.string() << "\n";
        break;
      }
      case tls_mode::throwaway: {
        pem_pair pem = make_self_signed_cert({"localhost"}, {"127.0.0.1", "::1"});
        cfg.server.cert_pem = std::move(pem.cert_pem);
        cfg.server.key_pem = std::move(pem.key_pem);
        std::cerr << "orgpatch-emulator: serving a throwaway self-signed certificate; "
                     "use --write-cert DIR for one a client can trust\n";
        break;
      }
    }

    // The server's threads inherit this mask, so SIGINT/SIGTERM reach only sigwait below.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    server srv(cfg.server);
    srv.start();
    std::cout << "listening on " << srv.base_url() << std::endl;

    int sig = 0;
    while (sigwait(&signals, &sig) != 0) {
    }
    srv.stop();
    std::cerr << "orgpatch-emulator: stopped by signal " << sig << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "orgpatch-emulator: " << e.what() << "\n";
    return 1;
  }
}
